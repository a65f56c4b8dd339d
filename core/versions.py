"""What produced a run: this project's version and commit, Python's, torch's and torchvision's.

Recorded with every run (the trainer's Started event, kept in the run's summary) and shown beside
its config, so that a result can be traced to the code that made it.
"""

from __future__ import annotations

import functools
import platform
import subprocess
from pathlib import Path
from typing import Any

from core.i18n import N_, _, tr

ROOT = Path(__file__).resolve().parent.parent
# (key, label); the labels are names but for "commit", marked for the catalog and shown with tr()
FIELDS = (("augmentation_lab", "Augmentation Lab"), ("commit", N_("commit")), ("python", "Python"),
          ("torch", "torch"), ("torchvision", "torchvision"))


@functools.lru_cache(maxsize=1)
def commit() -> str | None:
    """The git commit of this checkout ("+" when it has uncommitted changes), None outside git."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=5,
                              check=True).stdout.strip()

    try:
        head = git("rev-parse", "--short=12", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+" if dirty else "") if head else None


def versions() -> dict[str, Any]:
    import torch
    import torchvision

    from core import __version__

    return {"augmentation_lab": __version__, "commit": commit(), "python": platform.python_version(),
            "torch": torch.__version__, "torchvision": torchvision.__version__}


def describe(recorded: dict[str, Any] | None) -> str:
    """One line for a run's page: "Augmentation Lab 0.10.0, commit 1a2b3c, Python 3.12.3, torch ..."."""
    if not recorded:
        return _("Versions: not recorded (a run from before versions were recorded)")
    parts = [f"{tr(label)} {recorded[key]}" for key, label in FIELDS if recorded.get(key)]
    return _("Trained with {versions}").format(versions=", ".join(parts))
