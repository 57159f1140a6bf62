"""Balancing methods (plug-ins). See g2d.methods.base for the interface."""

from .base import Batch, Method, Stepper, available_methods, get_method, register_method

__all__ = ["Batch", "Method", "Stepper", "available_methods", "get_method", "register_method"]
