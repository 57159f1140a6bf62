"""Teacher confidence (Eq. 5), Sequential Modality Prioritization (Eq. 6-8) and OGM-GE.

Teacher confidence
    s_m = mean_i softmax(z_m^T(x_i))[y_i] (vectorized gather). Regression analog (ours, not the
    paper's): s_m = 1 - mean_i |sigmoid(z_m^T(x_i)) - y_i| on targets in [0, 1].

SMP
    Per batch, modalities are ranked by s_m ascending (least confident first); ties are broken
    by modality order (deterministic; the authors' code raises on a tie). With schedule
    K = (K_1, ..., K_M) in epochs, epochs [0, K_1) prioritize rank 1, [K_1, K_1+K_2) rank 2, ...,
    and from sum_{i<M} K_i on all modalities train jointly (K_M is the joint phase's length).
    The windows are half-open; the authors' code uses an inclusive window (epochs 0..150 = 151
    epochs for K_1 = 150): set K_1 one larger to match it.
    Complete suppression: k = 1 for the prioritized modality, 0 for the others.
    Partial suppression (Table 6, OGM-GE style): a non-prioritized modality m gets
    k_m = 1 - tanh(a * rho_m) with rho_m = s_m / s_prioritized (> 1 for the dominant modality).

Applying coefficients scales the gradients of a modality's whole encoder (``conv_only=True``
scales only conv weights, i.e. parameters with 4-D (or 3-D/5-D) weights, as the authors' code
does). Note: as in the authors' code, a zeroed gradient still lets SGD's momentum buffer and
weight decay move the parameters; "receives no gradient" means the loss gradient is zero.

OGM-GE (Peng et al., CVPR 2022)
    Scores from the student's own per-modality outputs: score_m = sum_i softmax(z_m^S)[y_i].
    For M = 2 the paper's ratio is score_a / score_v; for M >= 2 we use
    rho_m = score_m / mean_{j != m} score_j (identical for M = 2). A modality with rho_m > 1 gets
    k_m = 1 - tanh(alpha * (rho_m - 1)); others 1. On active epochs [start, end] (inclusive)
    gradients become g * k_m + N(0, std(g)) (generalization enhancement noise).
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["teacher_confidence", "confidences", "rank_modalities", "SMPScheduler",
           "apply_coefficients", "OGMGE", "default_schedule"]


def teacher_confidence(logits: Tensor, target: Tensor, task: str = "classification") -> Tensor:
    """Batch-mean confidence of a model on the true label (a 0-d tensor)."""
    logits = logits.detach().float()
    if task == "classification":
        p = F.softmax(logits, dim=1)
        return p.gather(1, target.long().view(-1, 1)).mean()
    pred = torch.sigmoid(logits.reshape(target.shape[0], -1)[:, 0])
    return 1.0 - (pred - target.float()).abs().mean()


def confidences(logits: Mapping[str, Tensor], target: Tensor, task: str = "classification") -> dict[str, float]:
    """{modality: s_m} for a dict of per-modality logits (one device sync for all)."""
    mods = list(logits)
    vals = torch.stack([teacher_confidence(logits[m], target, task) for m in mods]).cpu().tolist()
    return dict(zip(mods, vals))


def rank_modalities(conf: Mapping[str, float], order: Sequence[str]) -> list[str]:
    """Modalities sorted by confidence ascending; ties broken by position in ``order``."""
    return sorted(order, key=lambda m: (conf[m], order.index(m)))


def default_schedule(num_modalities: int, epochs: int) -> list[int]:
    """Equal prioritized phases over the first half of training, then joint (paper: (150,150) of 300)."""
    prio = max(1, epochs // 2) // (num_modalities - 1)
    sched = [prio] * (num_modalities - 1)
    return sched + [max(0, epochs - sum(sched))]


class SMPScheduler:
    """Gives the per-modality gradient coefficients k_m for an epoch and a batch's confidences."""

    def __init__(self, modalities: Sequence[str], schedule: Sequence[int], suppression: str = "complete",
                 partial_a: float = 1.0):
        self.modalities = list(modalities)
        if len(schedule) != len(self.modalities):
            raise ValueError(f"SMP schedule {list(schedule)} needs one entry per modality ({len(self.modalities)}: {self.modalities})")
        if any(k < 0 for k in schedule):
            raise ValueError(f"SMP schedule entries must be >= 0, got {list(schedule)}")
        if suppression not in ("complete", "partial"):
            raise ValueError(f"suppression must be complete or partial, got {suppression!r}")
        self.schedule = [int(k) for k in schedule]
        self.suppression = suppression
        self.partial_a = float(partial_a)
        bounds, acc = [], 0
        for k in self.schedule[:-1]:
            acc += k
            bounds.append(acc)
        self.bounds = bounds  # epoch where phase i ends (exclusive), for prioritized phases

    def phase(self, epoch: int) -> int:
        """0..M-2: prioritized phase index (rank to prioritize); M-1: joint phase."""
        for i, b in enumerate(self.bounds):
            if epoch < b:
                return i
        return len(self.modalities) - 1

    def prioritized(self, epoch: int, conf: Mapping[str, float]) -> str | None:
        ph = self.phase(epoch)
        if ph == len(self.modalities) - 1:
            return None
        return rank_modalities(conf, self.modalities)[ph]

    def coefficients(self, epoch: int, conf: Mapping[str, float]) -> dict[str, float]:
        prio = self.prioritized(epoch, conf)
        if prio is None:
            return {m: 1.0 for m in self.modalities}
        if self.suppression == "complete":
            return {m: 1.0 if m == prio else 0.0 for m in self.modalities}
        sp = max(conf[prio], 1e-8)
        out = {}
        for m in self.modalities:
            if m == prio:
                out[m] = 1.0
            else:
                rho = conf[m] / sp
                out[m] = float(1.0 - torch.tanh(torch.tensor(self.partial_a * rho)))
        return out


def _is_conv_weight(name: str, p: Tensor) -> bool:
    return name.endswith("weight") and p.dim() >= 3


@torch.no_grad()
def apply_coefficients(encoders: Mapping[str, nn.Module], coeffs: Mapping[str, float], conv_only: bool = False,
                       noise: bool = False) -> None:
    """Scale each modality encoder's gradients by k_m (in place). ``noise`` adds N(0, std(g)) (OGM-GE)."""
    for m, k in coeffs.items():
        if k == 1.0 and not noise:
            continue
        grads = [p.grad for name, p in encoders[m].named_parameters()
                 if p.grad is not None and not (conv_only and not _is_conv_weight(name, p))]
        if not noise:  # one fused call per encoder instead of one per parameter (same values)
            if grads and k == 0.0:
                torch._foreach_zero_(grads)
            elif grads:
                torch._foreach_mul_(grads, float(k))
            continue
        for g in grads:
            std = g.std().item() if g.numel() > 1 else 0.0
            g.mul_(k).add_(torch.randn_like(g) * (std + 1e-8))


class OGMGE:
    """On-the-fly Gradient Modulation with Generalization Enhancement (see module docstring)."""

    def __init__(self, modalities: Sequence[str], alpha: float = 0.1, start: int = 0, end: int | None = None,
                 noise: bool = True):
        self.modalities = list(modalities)
        self.alpha, self.start, self.end, self.noise = float(alpha), int(start), end, bool(noise)

    def active(self, epoch: int) -> bool:
        return epoch >= self.start and (self.end is None or epoch <= self.end)

    def coefficients(self, modality_logits: Mapping[str, Tensor], target: Tensor) -> dict[str, float]:
        scores = {}
        for m in self.modalities:
            p = F.softmax(modality_logits[m].detach().float(), dim=1)
            scores[m] = p.gather(1, target.long().view(-1, 1)).sum()
        vals = torch.stack([scores[m] for m in self.modalities]).cpu().tolist()
        out = {}
        for i, m in enumerate(self.modalities):
            others = [v for j, v in enumerate(vals) if j != i]
            rho = vals[i] / max(sum(others) / len(others), 1e-8)
            out[m] = float(1.0 - torch.tanh(torch.tensor(self.alpha * (rho - 1.0)))) if rho > 1 else 1.0
        return out
