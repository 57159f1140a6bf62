"""G2D (the paper's method) and its ablations (Tables 4, 6, 7).

* ``g2d_loss`` — the G2D loss (L_S + alpha L_F + beta L_L) without SMP;
* ``smp``      — SMP alone with the task loss;
* ``g2d``      — G2D loss + SMP (complete suppression, or ``g2d.suppression``);
* ``g2d_partial`` — G2D with partial suppression 1 - tanh(a * rho) (Table 6).
"""

from .base import Method, register_method


@register_method("g2d_loss")
class G2DLossOnly(Method):
    description = "G2D loss (task + alpha feature + beta logit distillation), no SMP"
    feature_distill = True
    logit_distill = True


@register_method("smp")
class SMPOnly(Method):
    description = "task loss + Sequential Modality Prioritization"
    smp = True


@register_method("g2d")
class G2D(Method):
    description = "G2D loss + Sequential Modality Prioritization"
    feature_distill = True
    logit_distill = True
    smp = True


@register_method("g2d_partial")
class G2DPartial(G2D):
    description = "G2D with partial suppression (k = 1 - tanh(a * rho)) of non-prioritized modalities"
    suppression = "partial"
