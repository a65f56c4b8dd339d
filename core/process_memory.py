"""Giving a long-lived server's freed memory back to the system.

glibc's allocator keeps memory that Python and the native libraries (numpy, pandas, plotly's JSON,
protobuf) have freed, in arenas that many threads share; a server whose threads allocate and free
a little on every live refresh sees its resident size creep up while its Python heap stays flat
(bench/trace_memory.py). `malloc_trim(0)` hands the free pages back. `start_trimming` does that
from one daemon thread every `interval_s` seconds, once per process; elsewhere than glibc (macOS,
Windows, musl) it does nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading

TRIM_ENV = "AUGLAB_MALLOC_TRIM_S"  # seconds between trims; 0 turns it off
DEFAULT_INTERVAL_S = 60.0

_started: threading.Event | None = None
_lock = threading.Lock()


def _malloc_trim():
    """glibc's malloc_trim, or None where there is none."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def trim() -> bool:
    """Give free heap memory back to the system now; False where the allocator cannot."""
    function = _malloc_trim()
    return bool(function(0)) if function is not None else False


def interval_s() -> float:
    """$AUGLAB_MALLOC_TRIM_S, else 60; 0 or less: never."""
    value = os.environ.get(TRIM_ENV)
    return float(value) if value not in (None, "") else DEFAULT_INTERVAL_S


def start_trimming(every_s: float | None = None) -> threading.Event | None:
    """Trim every `every_s` seconds (default: interval_s()) from a daemon thread, once per process.

    Returns the event that stops the thread (set it to stop), or None when trimming is off or the
    allocator has no malloc_trim."""
    global _started
    every = interval_s() if every_s is None else every_s
    with _lock:
        if _started is not None:
            return _started
        function = _malloc_trim()
        if every <= 0 or function is None:
            return None
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(every):
                function(0)

        threading.Thread(target=loop, name="malloc-trim", daemon=True).start()
        _started = stop
        return stop
