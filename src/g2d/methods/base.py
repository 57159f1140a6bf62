"""Balancing methods as plug-ins.

A method is a subclass of :class:`Method` registered with ``@register_method("name")`` in its own
file under ``g2d/methods/``; the student trainer only talks to this interface, so adding a
method never touches the trainer. Hooks:

* class flags ``feature_distill`` / ``logit_distill`` / ``smp`` pick the G2D loss terms and SMP;
* ``param_groups(model)`` — optimizer parameter groups (MSLR overrides it);
* ``coefficients(epoch, batch, out)`` — per-modality gradient coefficients applied after
  backward (SMP, OGM-GE);
* ``training_step(...)`` — the whole step, for methods that change its structure (MLA).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, ClassVar, Mapping

import torch
from torch import Tensor, nn

from ..errors import ConfigError, TrainingError
from ..losses import G2DLoss
from ..smp import SMPScheduler, apply_coefficients, default_schedule

__all__ = ["Method", "Batch", "register_method", "get_method", "available_methods", "Stepper"]

_METHODS: dict[str, type["Method"]] = {}


def register_method(name: str):
    def deco(cls):
        cls.name = name
        _METHODS[name] = cls
        return cls
    return deco


def _load_all() -> None:
    from . import builtin  # noqa: F401  (imports every method module)


def available_methods() -> list[str]:
    _load_all()
    return sorted(_METHODS)


def get_method(name: str) -> type["Method"]:
    _load_all()
    if name not in _METHODS:
        raise ConfigError(f"key 'study.methods': unknown method '{name}' (known: {', '.join(sorted(_METHODS))})")
    return _METHODS[name]


@dataclass
class Batch:
    idx: Tensor
    x: dict[str, Tensor]
    y: Tensor
    teacher_logits: dict[str, Tensor] | None = None
    teacher_features: dict[str, Tensor] | None = None
    teacher_conf: dict[str, float] | None = None


class Stepper:
    """Backward/step with optional fp16 GradScaler; gradients are unscaled before coefficients."""

    def __init__(self, optimizer: torch.optim.Optimizer, scaler: "torch.amp.GradScaler | None" = None,
                 autocast: Callable | None = None):
        self.optimizer = optimizer
        self.scaler = scaler
        self.autocast = autocast or (lambda: torch.autocast("cpu", enabled=False))

    def backward(self, loss: Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()

    def step(self) -> None:
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()


class Method:
    """Base: joint training (task loss only, all encoders train)."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    feature_distill: ClassVar[bool] = False
    logit_distill: ClassVar[bool] = False
    smp: ClassVar[bool] = False
    suppression: ClassVar[str | None] = None  # None: from config g2d.suppression

    def __init__(self, cfg: dict, modalities: list[str], task: str, teacher_metrics: Mapping[str, dict] | None = None):
        self.cfg = cfg
        self.modalities = list(modalities)
        self.task = task
        self.teacher_metrics = dict(teacher_metrics or {})
        g = cfg["g2d"]
        self.loss_fn = G2DLoss(alpha=g["alpha"] if self.feature_distill else 0.0,
                               beta=g["beta"] if self.logit_distill else 0.0,
                               temperature=g["temperature"], task=task,
                               regression_logit_loss=g["regression_logit_loss"])
        self.conv_only = bool(g["conv_only"])
        self.scheduler: SMPScheduler | None = None
        if self.smp:
            sched = g["schedule"] or default_schedule(len(self.modalities), cfg["train"]["epochs"])
            if len(sched) != len(self.modalities):
                raise ConfigError(f"key 'g2d.schedule': {sched} has {len(sched)} entries but the run has "
                                  f"{len(self.modalities)} modalities ({', '.join(self.modalities)})")
            self.scheduler = SMPScheduler(self.modalities, sched, self.suppression or g["suppression"], g["partial_a"])

    # ---- what the trainer asks -------------------------------------------------------------
    @property
    def needs_teacher_outputs(self) -> bool:
        return self.loss_fn.needs_teacher_features or self.loss_fn.needs_teacher_logits or self.smp

    def param_groups(self, model: nn.Module) -> list[dict]:
        return [{"params": [p for p in model.parameters() if p.requires_grad]}]

    def coefficients(self, epoch: int, batch: Batch, out) -> dict[str, float] | None:
        if self.scheduler is None:
            return None
        if batch.teacher_conf is None:
            raise TrainingError(f"method {self.name}: SMP needs teacher outputs")
        return self.scheduler.coefficients(epoch, batch.teacher_conf)

    def grad_noise(self, epoch: int) -> bool:
        return False

    def on_epoch_start(self, epoch: int) -> None:
        """Called before each epoch (methods keep no state across epochs, so resume is exact)."""

    #: skip the backward pass of encoders whose gradient SMP sets to exactly 0 (see :meth:`frozen_modalities`)
    skip_suppressed_backward: ClassVar[bool] = True

    def frozen_modalities(self, epoch: int, batch: Batch) -> list[str]:
        """Modalities whose whole encoder gradient this step is scaled by exactly 0 (SMP's prioritized
        phase with complete suppression, ``conv_only`` off, no gradient noise, and the base
        coefficients). Known before the forward pass from the teacher confidences, so the step can
        run those encoders without autograd and give them zero gradients: the optimizer update is
        identical (momentum and weight decay still see a zero gradient), the encoder's backward pass
        and saved activations are skipped."""
        if (not self.skip_suppressed_backward or self.scheduler is None or self.conv_only or batch.teacher_conf is None
                or type(self).coefficients is not Method.coefficients or self.grad_noise(epoch)):
            return []
        return [m for m, k in self.scheduler.coefficients(epoch, batch.teacher_conf).items() if k == 0.0]

    def training_step(self, model: nn.Module, batch: Batch, stepper: Stepper, epoch: int) -> dict[str, float]:
        frozen = [p for m in self.frozen_modalities(epoch, batch) for p in model.encoders[m].parameters()
                  if p.requires_grad]
        for p in frozen:
            p.requires_grad_(False)
        try:
            with stepper.autocast():
                out = model(batch.x)
                lo = self.loss_fn(out.logits.float(), batch.y, {m: h.float() for m, h in out.features.items()},
                                  batch.teacher_features, batch.teacher_logits)
        finally:
            for p in frozen:
                p.requires_grad_(True)
        check_finite(lo.total, epoch, self.name)
        stepper.backward(lo.total)
        for p in frozen:  # the gradient the coefficient k = 0 would have left
            p.grad = torch.zeros_like(p)
        logs = lo.as_floats()
        coeffs = self.coefficients(epoch, batch, out)
        noise = self.grad_noise(epoch)
        if coeffs is not None:
            apply_coefficients(model.encoders, coeffs, conv_only=self.conv_only, noise=noise)
            logs.update({f"k_{m}": float(k) for m, k in coeffs.items()})
        stepper.step()
        logs["_out"] = out  # consumed by the trainer for train accuracy
        return logs


def check_finite(loss: Tensor, epoch: int, method: str) -> None:
    v = float(loss.detach())
    if not math.isfinite(v):
        raise TrainingError(f"non-finite loss ({v}) at epoch {epoch} (method {method}); "
                            "lower train.lr, check the inputs for NaN, or use train.amp=off")
