"""Metrics: accuracy, macro-F1, MAPE, R^2, confidence ratio (Fig. 6), feature alignment (Fig. 5).

All functions take tensors (any device) and return Python floats.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["accuracy", "macro_f1", "mape", "r2_score", "mean_confidence", "confidence_ratio",
           "feature_alignment", "regression_predictions"]


def accuracy(logits: Tensor, target: Tensor) -> float:
    if target.numel() == 0:
        return float("nan")
    return float((logits.argmax(1) == target).float().mean())


def macro_f1(logits: Tensor, target: Tensor, num_classes: int | None = None) -> float:
    """Unweighted mean of per-class F1 over the classes present in target or prediction."""
    pred = logits.argmax(1)
    c = num_classes or int(max(pred.max(), target.max())) + 1
    idx = target * c + pred
    cm = torch.bincount(idx, minlength=c * c).reshape(c, c).double()
    tp = cm.diag()
    fp = cm.sum(0) - tp
    fn = cm.sum(1) - tp
    present = (cm.sum(0) + cm.sum(1)) > 0
    denom = 2 * tp + fp + fn
    f1 = torch.where(denom > 0, 2 * tp / denom.clamp(min=1), torch.zeros_like(tp))
    return float(f1[present].mean()) if present.any() else float("nan")


def regression_predictions(logits: Tensor) -> Tensor:
    return torch.sigmoid(logits.reshape(logits.shape[0], -1)[:, 0])


def mape(pred: Tensor, target: Tensor, eps: float = 1e-8) -> float:
    """Mean absolute percentage error in %, on the scale given (un-scale first for the paper's units)."""
    pred, target = pred.double(), target.double()
    return float(((pred - target).abs() / target.abs().clamp(min=eps)).mean() * 100)


def r2_score(pred: Tensor, target: Tensor) -> float:
    pred, target = pred.double(), target.double()
    ss_res = ((target - pred) ** 2).sum()
    ss_tot = ((target - target.mean()) ** 2).sum()
    return float(1 - ss_res / ss_tot) if ss_tot > 0 else float("nan")


def mean_confidence(logits: Tensor, target: Tensor) -> float:
    """Mean softmax probability on the true class."""
    return float(F.softmax(logits.float(), 1).gather(1, target.view(-1, 1)).mean())


def confidence_ratio(student_modality_logits: Tensor, teacher_logits: Tensor, target: Tensor) -> float:
    """Fig. 6: student's per-modality confidence / the teacher's confidence, same samples."""
    t = mean_confidence(teacher_logits, target)
    return mean_confidence(student_modality_logits, target) / t if t > 0 else float("nan")


def feature_alignment(student_features: Tensor, teacher_features: Tensor) -> float:
    """Fig. 5: mean cosine similarity between student and teacher features of the same samples."""
    return float(F.cosine_similarity(student_features.float().flatten(1), teacher_features.float().flatten(1), dim=1).mean())
