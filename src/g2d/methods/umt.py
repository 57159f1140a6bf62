"""UMT (Du et al., 2021): unimodal teachers distill *features* into the student: L_S + alpha * L_F."""

from .base import Method, register_method


@register_method("umt")
class UMT(Method):
    description = "task loss + alpha * feature MSE to the unimodal teachers"
    feature_distill = True
