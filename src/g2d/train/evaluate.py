"""Evaluation passes shared by the trainers: collect outputs over a split, compute metrics."""

from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor

from .. import metrics as M
from ..losses import task_loss
from .common import move_batch

__all__ = ["collect_unimodal", "collect_multimodal", "task_metrics"]


def task_metrics(logits: Tensor, y: Tensor, task: str, num_classes: int | None, prefix: str = "",
                 target_scale: tuple[float, float] | None = None) -> dict[str, float]:
    out = {f"{prefix}loss": float(task_loss(logits, y, task))}
    if task == "classification":
        out[f"{prefix}acc"] = M.accuracy(logits, y)
        out[f"{prefix}macro_f1"] = M.macro_f1(logits, y, num_classes)
    else:
        pred = M.regression_predictions(logits)
        tgt = y.float()
        if target_scale is not None:  # back to the dataset's units for MAPE
            lo, hi = target_scale
            pred, tgt = pred * (hi - lo) + lo, tgt * (hi - lo) + lo
        out[f"{prefix}mape"] = M.mape(pred, tgt)
        out[f"{prefix}r2"] = M.r2_score(pred, tgt)
    return out


@torch.no_grad()
def collect_unimodal(model, loader, modality: str, device, autocast, channels_last=False) -> dict[str, Tensor]:
    model.eval()
    L, H, Y, I = [], [], [], []
    for idx, x, y in loader:
        xb = move_batch({modality: x[modality]}, device, channels_last)[modality]
        with autocast():
            z, h = model(xb)
        L.append(z.float().cpu()); H.append(h.float().cpu()); Y.append(y); I.append(idx)
    return {"logits": torch.cat(L), "features": torch.cat(H), "y": torch.cat(Y), "idx": torch.cat(I)}


@torch.no_grad()
def collect_multimodal(model, loader, device, autocast, channels_last=False,
                       present: Mapping[str, Tensor] | None = None) -> dict:
    """Fused logits, per-modality logits and features over a loader (in loader order).

    ``present``: {modality: bool (N,)} over the whole split (missing-modality evaluation).
    """
    model.eval()
    L, Y, I = [], [], []
    ML = {m: [] for m in model.modalities}
    F = {m: [] for m in model.modalities}
    for idx, x, y in loader:
        xb = move_batch(x, device, channels_last)
        pres = {m: present[m][idx].to(device) for m in model.modalities} if present is not None else None
        with autocast():
            out = model(xb, present=pres)
        L.append(out.logits.float().cpu()); Y.append(y); I.append(idx)
        for m in model.modalities:
            ML[m].append(out.modality_logits[m].float().cpu())
            F[m].append(out.features[m].float().cpu())
    return {"logits": torch.cat(L), "y": torch.cat(Y), "idx": torch.cat(I),
            "modality_logits": {m: torch.cat(v) for m, v in ML.items()},
            "features": {m: torch.cat(v) for m, v in F.items()}}
