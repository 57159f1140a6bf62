"""Models: per-modality encoders, fusion modules and the authors' weight initialisation.

Teacher/student wrappers live in :mod:`g2d.models.nets`.
"""

from g2d.models.encoders import Encoder, available_encoders, build_encoder, register_encoder
from g2d.models.fusion import Fusion, available_fusions, build_fusion
from g2d.models.init import init_weights

__all__ = [
    "Encoder",
    "Fusion",
    "available_encoders",
    "available_fusions",
    "build_encoder",
    "build_fusion",
    "init_weights",
    "register_encoder",
]
