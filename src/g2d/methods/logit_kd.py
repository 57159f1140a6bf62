"""Logit distillation only: L_S + beta * L_L (the KL term of G2D without the feature term)."""

from .base import Method, register_method


@register_method("logit_kd")
class LogitKD(Method):
    description = "task loss + beta * KL(teacher || student) logits"
    logit_distill = True
