"""The G2D loss (paper Eq. 1-4) and every variant the paper compares.

    L = L_S + alpha * L_F + beta * L_L

* ``L_S`` task loss: cross-entropy(z^S, y) for classification; MSE(sigmoid(z^S), y) for
  regression with y in [0, 1].
* ``L_F`` feature loss: sum over modalities of MSE(h_m^S, h_m^T) (mean over batch and feature
  dims, as the authors' ``F.mse_loss``).
* ``L_L`` logit loss: sum over modalities of T^2 * KL(softmax(z_m^T/T) || softmax(z^S/T)) with
  ``batchmean`` reduction. The student's *fused* logits are matched to *each* teacher.
  Regression has no softmax: by default L_L is dropped (``regression_logit_loss="none"``);
  ``"mse"`` replaces it by sum_m MSE(sigmoid(z^S), sigmoid(z_m^T)) — a choice of ours, not the
  paper's.

Variants: joint = (alpha, beta) = (0, 0); UMT = (alpha, 0); logit-KD = (0, beta); G2D = (1, 1).
Terms whose weight is 0 are not computed (teacher outputs may then be ``None``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["G2DLoss", "LossOutput", "task_loss", "feature_loss", "logit_loss"]


@dataclass
class LossOutput:
    total: Tensor
    task: Tensor
    feature: Tensor
    logit: Tensor

    def as_floats(self) -> dict[str, float]:
        # one device->host transfer for the four terms (one sync per step on CUDA, not four)
        vals = torch.stack([t.detach().float() for t in (self.total, self.task, self.feature, self.logit)]).tolist()
        return dict(zip(("loss", "loss_task", "loss_feature", "loss_logit"), vals))


def task_loss(logits: Tensor, target: Tensor, task: str) -> Tensor:
    if task == "classification":
        return F.cross_entropy(logits, target)
    pred = torch.sigmoid(logits.reshape(target.shape[0], -1)[:, 0])
    return F.mse_loss(pred, target.float())


def feature_loss(student: Mapping[str, Tensor], teacher: Mapping[str, Tensor]) -> Tensor:
    terms = []
    for m, hs in student.items():
        if m not in teacher:
            raise KeyError(f"no teacher features for modality {m!r}")
        ht = teacher[m].to(hs.dtype)
        if ht.shape != hs.shape:
            raise ValueError(f"feature shapes differ for {m!r}: student {tuple(hs.shape)} vs teacher {tuple(ht.shape)} "
                             "(student and teacher encoders must share the architecture)")
        terms.append(F.mse_loss(hs, ht))
    return torch.stack(terms).sum()


def logit_loss(student_logits: Tensor, teacher_logits: Mapping[str, Tensor], temperature: float,
               task: str = "classification", regression_mode: str = "none") -> Tensor:
    if task == "classification":
        # x / 1 and x * 1 are exact: skipping them at T = 1 (the default) saves autograd nodes per step
        t = float(temperature)
        log_p_s = F.log_softmax(student_logits / t if t != 1.0 else student_logits, dim=1)
        terms = []
        for zt in teacher_logits.values():
            zt = zt.to(student_logits.dtype)
            kl = F.kl_div(log_p_s, F.softmax(zt / t if t != 1.0 else zt, dim=1), reduction="batchmean")
            terms.append(kl * t ** 2 if t != 1.0 else kl)
        return torch.stack(terms).sum()
    if regression_mode == "mse":
        ps = torch.sigmoid(student_logits[:, 0])
        return torch.stack([F.mse_loss(ps, torch.sigmoid(zt[:, 0].to(ps.dtype))) for zt in teacher_logits.values()]).sum()
    return student_logits.new_zeros(())


class G2DLoss(nn.Module):
    """Task + alpha * feature distillation + beta * logit distillation. Returns every term."""

    def __init__(self, alpha: float = 1.0, beta: float = 1.0, temperature: float = 1.0,
                 task: str = "classification", regression_logit_loss: str = "none"):
        super().__init__()
        if task not in ("classification", "regression"):
            raise ValueError(f"task must be classification or regression, got {task!r}")
        if temperature <= 0:
            raise ValueError("temperature must be > 0")
        self.alpha, self.beta, self.temperature = float(alpha), float(beta), float(temperature)
        self.task = task
        self.regression_logit_loss = regression_logit_loss

    @property
    def needs_teacher_features(self) -> bool:
        return self.alpha > 0

    @property
    def needs_teacher_logits(self) -> bool:
        return self.beta > 0 and (self.task == "classification" or self.regression_logit_loss != "none")

    def forward(self, logits: Tensor, target: Tensor,
                student_features: Mapping[str, Tensor] | None = None,
                teacher_features: Mapping[str, Tensor] | None = None,
                teacher_logits: Mapping[str, Tensor] | None = None) -> LossOutput:
        zero = logits.new_zeros(())
        ls = task_loss(logits, target, self.task)
        lf = zero
        if self.needs_teacher_features:
            if student_features is None or teacher_features is None:
                raise ValueError("alpha > 0 needs student and teacher features")
            lf = feature_loss(student_features, teacher_features)
        ll = zero
        if self.needs_teacher_logits:
            if teacher_logits is None:
                raise ValueError("beta > 0 needs teacher logits")
            ll = logit_loss(logits, teacher_logits, self.temperature, self.task, self.regression_logit_loss)
        # a weight of exactly 1 is applied without a multiply (exact; one autograd node fewer each)
        total = ls + (lf if self.alpha == 1.0 else self.alpha * lf) + (ll if self.beta == 1.0 else self.beta * ll)
        return LossOutput(total=total, task=ls, feature=lf, logit=ll)
