"""OGM-GE (Peng et al., CVPR 2022): on-the-fly gradient modulation with generalization enhancement.

Scores come from the student's own per-modality outputs; on active epochs the dominant
modality's encoder gradients are scaled by 1 - tanh(alpha * (rho - 1)) and Gaussian noise with
the gradient's std is added to every encoder's gradients (see g2d.smp.OGMGE). Config: ``ogm``.
"""

from ..smp import OGMGE
from .base import Method, register_method


@register_method("ogm_ge")
class OGMGEMethod(Method):
    description = "task loss + OGM-GE gradient modulation (student's own scores, Gaussian noise)"

    def __init__(self, cfg, modalities, task, teacher_metrics=None):
        super().__init__(cfg, modalities, task, teacher_metrics)
        if task != "classification":
            from ..errors import ConfigError
            raise ConfigError("key 'study.methods': ogm_ge is defined for classification only")
        o = cfg["ogm"]
        self.ogm = OGMGE(self.modalities, o["alpha"], o["start"], o["end"], o["noise"])

    def coefficients(self, epoch, batch, out):
        if not self.ogm.active(epoch):
            return None
        return self.ogm.coefficients(out.modality_logits, batch.y)

    def grad_noise(self, epoch):
        return self.ogm.noise and self.ogm.active(epoch)
