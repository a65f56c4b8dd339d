"""Augmentations, declared once (see schema.py) and applied to whole batches."""
from . import mixing
from .pipeline import Pipeline, Step, as_unit_float, load_json
from .schema import REGISTRY, AugmentError, Op, Param, get_op

GROUPS = ("flip", "geometry", "colour", "occlusion", "policy")

__all__ = ["AugmentError", "GROUPS", "Op", "Param", "Pipeline", "REGISTRY", "Step", "as_unit_float", "get_op", "load_json", "mixing"]
