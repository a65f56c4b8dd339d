"""The server gives freed native memory back to the system (core.process_memory)."""
import subprocess
import sys
from pathlib import Path

import pytest

from core import process_memory

ROOT = Path(__file__).resolve().parents[1]
GLIBC = process_memory._malloc_trim() is not None


def test_the_interval_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(process_memory.TRIM_ENV, raising=False)
    assert process_memory.interval_s() == process_memory.DEFAULT_INTERVAL_S
    monkeypatch.setenv(process_memory.TRIM_ENV, "2.5")
    assert process_memory.interval_s() == 2.5


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's")
def test_a_trim_hands_freed_heap_back():
    # Many small blocks freed leave free pages inside the heap; a trim returns some of them.
    code = """
import ctypes, ctypes.util
from core import process_memory
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
blocks = [libc.malloc(4096) for _ in range(20000)]
keep = blocks[-1]
for b in blocks[:-1]:
    libc.free(b)
print(process_memory.trim())
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's")
def test_trimming_runs_in_one_thread_per_process_and_stops_on_request():
    code = """
import threading, time
from core import process_memory
calls = []
real = process_memory._malloc_trim()
process_memory._malloc_trim = lambda: (lambda pad: calls.append(pad) or real(pad))
stop = process_memory.start_trimming(0.05)
assert process_memory.start_trimming(0.05) is stop  # once per process
assert [t.name for t in threading.enumerate()].count("malloc-trim") == 1
time.sleep(0.5)
stop.set()
time.sleep(0.2)
n = len(calls)
time.sleep(0.3)
print(n >= 3, len(calls) == n, process_memory.start_trimming(0) is stop)
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True", "True"]


def test_trimming_is_off_at_zero():
    code = "from core import process_memory; print(process_memory.start_trimming(0))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "None"
