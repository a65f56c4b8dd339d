"""The C allocator's settings for a process that trains.

A training step allocates and frees the same few megabyte-sized tensors every batch (a
256-image CIFAR batch is 3 MB a copy in float). glibc's malloc serves blocks that size with
fresh mmap()s, or hands the top of its heap back to the kernel as soon as it is free, so the next
batch's tensors fault their pages in again, at a microsecond or two for each 4 kB page. Whether
it happens depends on the heap's history, so it comes and goes between processes: measured on an
Intel Xeon (2026-12-06), a loop of mixing.mixup on a 256-image batch faulted 1,500 pages a call
in one process (2.2 ms a call instead of 0.8 ms) and 150-300 in most fresh ones, and the whole
augmentation pipeline up to 1,755 a batch; with this setting, none. Keeping freed memory for the next batch
removes that; the price is that the process keeps its peak heap until it exits, which is what a
trainer (one run, then exit) wants and a long-lived server does not, so only trainers call this
(core.cli's main, the Ray actor) and the benchmarks that time them.
"""
from __future__ import annotations

import ctypes
import sys

# mallopt's parameters, from glibc's malloc.h
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
TRIM_THRESHOLD = 1 << 30  # never hand the heap's top back while a run lives (below 1 GB free)
MMAP_THRESHOLD = 32 << 20  # blocks below 32 MB (glibc's largest dynamic threshold) come from the heap


def keep_freed_memory() -> bool:
    """Have malloc reuse what a batch frees; True where that was set (glibc on Linux), False
    elsewhere (macOS, Windows, musl), where the system allocator is left as it is."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
