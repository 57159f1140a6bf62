"""The authors' weight initialisation, applied to every submodule of a model.

G2D's public code (inherited from OGM-GE) initialises

* ``nn.Linear``: Xavier-normal weight, bias 0;
* convolutions: Kaiming-normal weight with ``mode="fan_out"``, ``nonlinearity="relu"``;
* BatchNorm: weight 1, bias 0.

We apply the same rule to ``Conv1d``/``Conv2d``/``Conv3d`` (the authors only have ``Conv2d``), set a
convolution bias (when there is one) to 0, and treat ``LayerNorm``/``GroupNorm`` like BatchNorm.
Parameters that are not owned by one of these layers (e.g. ``nn.MultiheadAttention``'s packed
``in_proj_weight``, learned positional embeddings) keep their own initialisation.
"""

from __future__ import annotations

from torch import nn

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NORM = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)


def init_weights(module: nn.Module) -> nn.Module:
    """Initialise ``module`` and all its submodules in place (see module docstring); returns it."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_normal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, _CONV):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, _NORM):
            if getattr(m, "weight", None) is not None:
                nn.init.ones_(m.weight)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
    return module
