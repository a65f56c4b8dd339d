"""A trainer process keeps the memory a batch frees for the next batch (core/training/allocator.py)."""
import subprocess
import sys
from pathlib import Path

import pytest

from core import cli
from core.training import allocator

ROOT = Path(__file__).resolve().parents[1]

# In a fresh interpreter, glibc's own counters (mallinfo2): where an 8 MB tensor, a batch's
# size, comes from (a fresh mmap, whose pages fault in anew each batch, or the heap), and whether
# the heap hands the memory back when it is freed.
HEAP = """
import ctypes, sys, torch
from core.training.allocator import keep_freed_memory
class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                                      "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info
if sys.argv[1] == "keep":
    assert keep_freed_memory()
before = libc.mallinfo2()
t = torch.empty(2 << 20).fill_(1.0)  # 8 MB
during = libc.mallinfo2()
del t
after = libc.mallinfo2()
print(during.hblkhd - before.hblkhd, during.arena - before.arena, after.arena - during.arena)
"""


def heap(mode: str) -> tuple[int, int, int]:
    """(bytes newly mmapped, heap growth, heap change on freeing) for one 8 MB tensor."""
    out = subprocess.run([sys.executable, "-c", HEAP, mode], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return tuple(int(v) for v in out.stdout.split())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's (Linux)")
def test_a_batch_comes_from_the_heap_and_stays_there_for_the_next():
    mapped, grown, freed = heap("default")
    if mapped < 8 << 20:
        pytest.skip("this C library does not mmap an 8 MB block by default (not glibc's malloc?)")
    mapped, grown, freed = heap("keep")
    assert mapped < 1 << 20, "an 8 MB tensor should come from the heap, not from a fresh mmap"
    assert grown >= 8 << 20
    assert freed == 0, "freeing it must not hand the heap's top back to the system"


def test_elsewhere_the_system_allocator_is_left_alone(monkeypatch):
    monkeypatch.setattr(allocator.sys, "platform", "darwin")
    assert allocator.keep_freed_memory() is False


def test_the_cli_trainer_keeps_freed_memory(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(cli, "keep_freed_memory", lambda: calls.append(True) or True)
    assert cli.main(["--print-config", "--dataset", "digits"]) == 0
    assert calls == [True]
