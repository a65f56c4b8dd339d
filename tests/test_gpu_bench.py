"""The GPU's code paths where there is no GPU: device selection, mixed-precision choice, bench/gpu.py.

The GPU figures themselves are measured by bench/gpu.py on a CUDA machine; here every section of
it runs on the CPU at a tiny size (--smoke), and the choices that depend on the hardware are
checked with the hardware's answers faked.
"""
from __future__ import annotations

import sys

import pytest
import torch
from conftest import ROOT

from core.runs.recipes import recipe
from core.training import device as dev
from core.training.config import ConfigError


@pytest.fixture
def gpu_bench(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    sys.modules.pop("gpu", None)
    import gpu

    return gpu


@pytest.mark.parametrize(("cuda", "mps", "expected"), [
    (True, True, "cuda"), (False, True, "mps"), (False, False, "cpu"), (True, False, "cuda"),
])
def test_auto_prefers_cuda_then_apples_mps_then_the_cpu(monkeypatch, cuda, mps, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert dev.pick_device("auto").type == expected
    for name, present in (("cuda", cuda), ("mps", mps)):
        if present:
            assert dev.pick_device(name).type == name
        else:
            with pytest.raises(ConfigError, match=f"run.device is '{name}'"):
                dev.pick_device(name)


@pytest.mark.parametrize(("bf16", "expected"), [(True, torch.bfloat16), (False, torch.float16)])
def test_auto_precision_on_cuda_is_bf16_where_the_gpu_has_it_else_fp16(monkeypatch, bf16, expected):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    assert dev.autocast_dtype("auto", torch.device("cuda")) == expected
    assert dev.autocast_dtype("auto", torch.device("mps")) is None  # MPS autocast is patchy: off
    assert dev.autocast_dtype("auto", torch.device("cpu")) is None
    assert dev.autocast_dtype("fp16", torch.device("cuda")) == torch.float16
    with pytest.raises(ConfigError, match="fp16"):
        dev.autocast_dtype("fp16", torch.device("cpu"))


def test_the_gpu_recipe_asks_for_mixed_precision_compile_and_falls_back_on_a_cpu():
    cfg = recipe("gpu_fast_cifar")
    assert (cfg.run.device, cfg.run.amp, cfg.run.channels_last, cfg.run.compile) == ("auto", "auto", True, True)
    assert cfg.model.options["width"] > recipe("cpu_fast_cifar").model.options["width"]
    if not torch.cuda.is_available():  # here it would train on the CPU, in float32
        assert dev.planned_device(cfg.run.device, 1, cfg.run.amp)[0].type in ("cpu", "mps")


def test_without_a_gpu_the_bench_measures_nothing_and_says_so(gpu_bench, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_bench.main([]) == 1
    assert "not measured" in capsys.readouterr().out


def test_every_section_of_the_gpu_bench_runs_on_the_cpu(gpu_bench, auglab_home, capsys):
    assert gpu_bench.main(["--smoke"]) == 0
    out = capsys.readouterr().out
    summary = out.split("\nsummary", 1)[1]
    for name in ("'auto' picks the GPU", "bf16 trains as float32 does", "gpu_fast_cifar reaches 94%",
                 "the course's 75.4%", "20x faster than 123 s"):
        assert name in summary
    assert "smoke: not GPU figures" in summary
    assert out.count("epoch   1") == 4  # float32, bf16, the GPU preset, the course's ResNet-18: each trained
    assert "NOT met" not in summary  # smoke figures are held against nothing
