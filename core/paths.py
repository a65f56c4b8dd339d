"""Where Augmentation Lab keeps what it persists (run store, run folders, caches, uploads)."""

from __future__ import annotations

import os
from pathlib import Path

# One variable so that a GPU server and a laptop can share runs by pointing at the same folder,
# and tests can point everything at a temporary folder.
HOME_ENV = "AUGLAB_HOME"
DEFAULT_HOME = Path("~/.augmentation_lab")


def home() -> Path:
    """The data folder, created on first use; the variable is read on every call so tests can change it."""
    path = Path(os.environ.get(HOME_ENV) or DEFAULT_HOME).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path
