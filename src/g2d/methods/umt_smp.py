"""UMT + SMP (Table 4): UMT's feature distillation (L_S + alpha * L_F) with Sequential Modality
Prioritization (complete suppression, or ``g2d.suppression``) on the G2D schedule ``g2d.schedule``."""

from .base import Method, register_method


@register_method("umt_smp")
class UMTSMP(Method):
    description = "UMT (task + alpha * feature MSE to the teachers) + Sequential Modality Prioritization"
    feature_distill = True
    smp = True
