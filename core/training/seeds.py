"""Every random choice of a run from one seed: independent generators per purpose."""

from __future__ import annotations

import hashlib

import torch


def derived_seed(seed: int, purpose: str) -> int:
    """Independent seeds for shuffling, augmentation and mixing, all from run.seed."""
    digest = hashlib.sha256(f"{seed}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def generator(seed: int, purpose: str) -> torch.Generator:
    return torch.Generator().manual_seed(derived_seed(seed, purpose))
