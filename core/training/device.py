"""Where a run computes: the device, its threads, and mixed precision where it pays."""

from __future__ import annotations

import os
from contextlib import nullcontext

import torch

from core.i18n import N_, _, tr
from core.training.config import ConfigError


def available_cores() -> int:
    """Cores this process may use (a container's or taskset's limit, not the machine's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def pick_device(requested: str) -> torch.device:
    """"auto" prefers CUDA, then Apple's MPS, then the CPU; an explicit request must be available."""
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(_("run.device is 'cuda' but PyTorch sees no CUDA GPU here; use 'auto' or 'cpu'"))
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(_(
            "run.device is 'mps' but Apple's Metal backend is not available here; use 'auto' "
            "or 'cpu'"
        ))
    return device


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU computes in bfloat16 natively (AVX-512 or AMX, through oneDNN). On an
    AVX2-only CPU, common in laptops, bf16 autocast is emulated: FastCNN's training step was 12x
    slower than in float32 on an AVX2 AMD EPYC (4.7 s against 0.38 s for a batch of 256)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return torch.backends.cpu.get_cpu_capability() not in ("DEFAULT", "AVX2")


# Marked for the catalog; describe_device shows it translated (tr).
BF16_EMULATED = N_("float32: this CPU has no native bfloat16, where bf16 autocast runs about 10x slower")


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The mixed-precision dtype, or None for full float32 (also for bf16 on a CPU that would emulate it)."""
    if amp == "off":
        return None
    if amp == "bf16" and device.type == "cpu" and not cpu_has_fast_bf16():
        return None
    if amp == "auto":
        # On by default only on CUDA, where it is well supported and roughly doubles speed;
        # CPU autocast is slower for small convolutions and MPS autocast is still patchy.
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if amp == "fp16" and device.type != "cuda":
        raise ConfigError(_("run.amp 'fp16' needs a CUDA GPU (it relies on loss scaling); use 'bf16' or 'off'"))
    return torch.bfloat16 if amp == "bf16" else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def describe_device(device: torch.device, threads: int, amp: torch.dtype | None, requested: str = "auto") -> str:
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        text = f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    elif device.type == "cpu":
        text = (_("cpu ({threads} thread)") if threads == 1 else _("cpu ({threads} threads)")).format(threads=threads)
    else:
        text = device.type
    if amp is None and requested == "bf16" and device.type == "cpu":
        return f"{text}, {tr(BF16_EMULATED)}"
    if amp:
        return _("{device}, {dtype} autocast").format(device=text, dtype=str(amp).removeprefix("torch."))
    return text


def planned_device(requested: str, threads: int | None, amp: str) -> tuple[torch.device, str]:
    """The device a run with these run.* settings trains on here, and how its Started event will
    describe it; raises ConfigError for a device this machine lacks."""
    device = pick_device(requested)
    return device, describe_device(device, threads or available_cores(), autocast_dtype(amp, device), amp)
