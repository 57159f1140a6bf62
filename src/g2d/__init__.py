"""g2d — Gradient-Guided Distillation (G2D, ICCV 2025) for multimodal learning.

Library layout:
  g2d.losses     G2D loss (task + alpha*feature MSE + beta*logit KL) and every variant
  g2d.smp        teacher confidence (Eq. 5), Sequential Modality Prioritization, OGM-GE
  g2d.models     encoders, fusion modules, teacher/student models
  g2d.methods    balancing methods as registered plug-ins (joint, umt, smp, g2d_loss, g2d, ...)
  g2d.train      teacher/student trainers, teacher-output caching, checkpoints
  g2d.data       dataset registry, acquire/prepare per dataset, prepared-array loader
  g2d.metrics    accuracy, macro-F1, MAPE, R^2, confidence ratio, feature alignment
  g2d.config     the one validated study config
  g2d.cli        the ``g2d`` command
"""

__version__ = "0.1.0"
