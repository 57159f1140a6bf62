"""MLA (Zhang et al., CVPR 2024): multimodal learning by alternating unimodal adaptation.

Each training step optimizes ONE modality (round robin over modalities, step by step): only that
modality's encoder is run, and the loss is the task loss on its per-modality logits through the
fusion module's head, so the head is shared across the alternating unimodal steps and the
modalities never compete inside one gradient. Evaluation uses the fused logits as usual.
Simplification: the paper's gradient-projection against forgetting and its test-time
entropy-weighted fusion are not implemented (documented in README).
"""

from ..losses import task_loss
from .base import Method, check_finite, register_method


@register_method("mla")
class MLA(Method):
    description = "alternating unimodal adaptation (round-robin modality per step), shared head"

    def __init__(self, cfg, modalities, task, teacher_metrics=None):
        super().__init__(cfg, modalities, task, teacher_metrics)
        self._step = 0

    def on_epoch_start(self, epoch):
        self._step = 0

    def training_step(self, model, batch, stepper, epoch):
        m = self.modalities[self._step % len(self.modalities)]
        self._step += 1
        with stepper.autocast():
            out = model(batch.x)
            loss = task_loss(out.modality_logits[m].float(), batch.y, self.task)
        check_finite(loss, epoch, self.name)
        stepper.backward(loss)
        stepper.step()
        logs = {"loss": float(loss.detach()), "loss_task": float(loss.detach()), "loss_feature": 0.0, "loss_logit": 0.0}
        logs.update({f"k_{n}": 1.0 if n == m else 0.0 for n in self.modalities})
        logs["_out"] = out
        return logs
