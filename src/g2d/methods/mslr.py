"""MSLR (Yao & Mihalcea, 2022): modality-specific learning rates.

Each modality's encoder gets its own learning rate ``train.lr * scale_m``; the fusion module
keeps ``train.lr``. Scales come from ``methods.mslr.lr_scale`` ({modality: float}); by default
(``auto``) the weaker modality is sped up in proportion to how far its teacher lags the best
one: scale_m = acc_best / acc_m from the teachers' validation accuracies (1 when unknown).
"""

from ..errors import ConfigError
from .base import Method, register_method


@register_method("mslr")
class MSLR(Method):
    description = "task loss, per-modality encoder learning rates"

    def scales(self) -> dict[str, float]:
        opts = (self.cfg.get("methods") or {}).get("mslr") or {}
        user = opts.get("lr_scale", "auto")
        if user != "auto":
            if not isinstance(user, dict) or set(user) - set(self.modalities):
                raise ConfigError(f"key 'methods.mslr.lr_scale': expected {{modality: scale}} over {self.modalities}, got {user}")
            return {m: float(user.get(m, 1.0)) for m in self.modalities}
        accs = {m: (self.teacher_metrics.get(m) or {}).get("val_acc") for m in self.modalities}
        if any(a is None or a <= 0 for a in accs.values()):
            return {m: 1.0 for m in self.modalities}
        best = max(accs.values())
        return {m: best / accs[m] for m in self.modalities}

    def param_groups(self, model):
        lr = self.cfg["train"]["lr"]
        groups = [{"params": list(model.encoders[m].parameters()), "lr": lr * s} for m, s in self.scales().items()]
        enc_ids = {id(p) for g in groups for p in g["params"]}
        rest = [p for p in model.parameters() if id(p) not in enc_ids]
        return groups + [{"params": rest, "lr": lr}]
