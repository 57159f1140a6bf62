"""Imports every built-in method module so that each registers itself."""

from . import g2d, joint, logit_kd, mla, mslr, ogm_ge, umt, umt_smp  # noqa: F401
