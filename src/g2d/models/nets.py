"""Teacher (unimodal) and student (multimodal) models built from encoders and a fusion module."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import torch
from torch import Tensor, nn

from .encoders import build_encoder
from .fusion import build_fusion
from .init import init_weights

__all__ = ["UnimodalModel", "MultimodalModel", "ModelOutput", "build_teacher", "build_student", "encoder_spec", "num_outputs"]


class UnimodalModel(nn.Module):
    """Teacher m: encoder E_m -> feature h_m -> linear head -> logits z_m."""

    def __init__(self, encoder: nn.Module, num_outputs: int):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.out_dim, num_outputs)
        init_weights(self.head)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.encoder(x)
        return self.head(h), h


@dataclass
class ModelOutput:
    logits: Tensor
    features: dict[str, Tensor]
    modality_logits: dict[str, Tensor]


class MultimodalModel(nn.Module):
    """Student: one encoder per modality + a fusion module producing fused and per-modality logits.

    ``present`` (optional, {modality: bool tensor (B,)}) zeroes the features of missing
    modalities per sample (test-time missing-modality evaluation, Table 11).
    """

    def __init__(self, encoders: Mapping[str, nn.Module], fusion: nn.Module):
        super().__init__()
        self.modalities = list(encoders)
        self.encoders = nn.ModuleDict(encoders)
        self.fusion = fusion

    def encode(self, x: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return {m: self.encoders[m](x[m]) for m in self.modalities}

    def forward(self, x: Mapping[str, Tensor], present: Mapping[str, Tensor] | None = None) -> ModelOutput:
        feats = self.encode(x)
        fused_in = feats
        if present is not None:
            fused_in = {m: h * present[m].to(h.dtype).view(-1, *([1] * (h.dim() - 1))) for m, h in feats.items()}
        logits, per_mod = self.fusion([fused_in[m] for m in self.modalities])
        return ModelOutput(logits=logits, features=feats, modality_logits=dict(zip(self.modalities, per_mod)))


def encoder_spec(cfg: dict, spec, modality: str) -> dict:
    """The encoder spec for a modality: config ``model.encoders.<m>`` over the dataset default."""
    user = (cfg.get("model", {}).get("encoders") or {}).get(modality)
    base = dict(spec.default_encoders.get(modality, {"name": "smallcnn"}))
    if user:
        if "name" in user and user["name"] != base.get("name"):
            base = {}
        base.update(user)
    return base


def num_outputs(spec, meta: dict) -> int:
    """Output width: number of classes (from the prepared meta when the dataset's class list is
    data-dependent, e.g. VGGSound), or 1 for regression."""
    if spec.task == "regression":
        return 1
    return len(meta.get("classes") or spec.classes)


def build_teacher(cfg: dict, spec, meta: dict, modality: str) -> UnimodalModel:
    shape = tuple(meta["modalities"][modality]["shape"])
    enc = build_encoder(encoder_spec(cfg, spec, modality), shape, key=f"model.encoders.{modality}")
    return UnimodalModel(enc, num_outputs(spec, meta))


def build_student(cfg: dict, spec, meta: dict, modalities: Sequence[str], fusion: str) -> MultimodalModel:
    encs = {}
    for m in modalities:
        shape = tuple(meta["modalities"][m]["shape"])
        encs[m] = build_encoder(encoder_spec(cfg, spec, m), shape, key=f"model.encoders.{m}")
    fus = build_fusion(fusion, [encs[m].out_dim for m in modalities], num_outputs(spec, meta), cfg["model"]["fusion_dim"])
    return MultimodalModel(encs, fus)
