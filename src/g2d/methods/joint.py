"""Joint training: the multimodal student with the task loss only (the paper's "Joint-Train")."""

from .base import Method, register_method


@register_method("joint")
class Joint(Method):
    description = "task loss only, all encoders train jointly"
