"""Shared test set-up: the repository root is importable, and nothing touches the real data folder."""
import base64
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Tests use tiny tensors: one thread avoids threads fighting over the CI machine's two cores.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def auglab_home(tmp_path, monkeypatch):
    """Every test gets its own AUGLAB_HOME, so runs, caches and uploads never leak between tests."""
    home = tmp_path / "auglab_home"
    monkeypatch.setenv("AUGLAB_HOME", str(home))
    return home


def png_header_only(width: int, height: int) -> bytes:
    """A PNG of ~100 bytes that declares `width` x `height` pixels (a decompression-bomb stand-in)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit grayscale
    pixels = zlib.compress(bytes(64))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def plotly_array(values) -> np.ndarray:
    """A trace's x or y from a chart spec: a list, or numpy data that plotly ships as {"dtype", "bdata"} base64."""
    if isinstance(values, dict) and "bdata" in values:
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"])
    return np.asarray(values, dtype=float)
