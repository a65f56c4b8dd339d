"""The GPU figures for the README, in one run of under 8 minutes on a machine with a CUDA GPU.

    python bench/gpu.py                          # every section, on CIFAR-10 from /work/shared/data
    python bench/gpu.py --airbench airbench94.py # and the public airbench94 script side by side
    python bench/gpu.py --smoke                  # every code path on the CPU, tiny (what the tests run)

Sections, each printing its figures and its target:
1. Device selection: what run.device "auto" picks here (CUDA, then Apple's MPS, then the CPU) and
   how the run describes it, and that asking for a device that is absent is a clear error.
2. Mixed precision: cpu_fast_cifar_1min (2 epochs) in float32, bfloat16 and float16 with loss
   scaling on the GPU; each must train to within 1.5 points of the float32 run, and the float32
   run should match the CPU's 78% (bench/NOTES_time_to_accuracy.md).
3. GPU speed preset: gpu_fast_cifar (data on the device, batched per-image augmentation there,
   mixed precision, channels_last, torch.compile), evaluated every epoch: the training time of
   the first evaluation at 94% or more.
4. airbench94 side by side (with --airbench PATH): the public script run in a subprocess on the
   same machine, the last lines it prints shown beside ours. It is brought in for the comparison
   only and never committed (it needs its own copy of CIFAR-10 where it looks for one).
5. The course's flip experiment (ResNet-18, Adam 1e-3, batch 256, 10 epochs, flips): test
   accuracy against the course's 75.4%, seconds an epoch against 20x faster than its 123 s.

Without a CUDA GPU nothing is measured: the script says so and stops, unless --smoke asks for
every section's code path to run on the CPU at a tiny size (the embedded dataset, a few
steps). --smoke figures mean nothing and are labelled so; the README marks the GPU figures as not
yet measured until this script has run on a GPU.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass

import _common as common  # noqa: E402  (puts the project root on sys.path)
import torch

from core.runs.presets import COURSE_FLIP  # noqa: E402
from core.runs.recipes import recipe  # noqa: E402
from core.training.config import ConfigError, TrainConfig, apply_overrides  # noqa: E402
from core.training.device import autocast_dtype, describe_device, pick_device  # noqa: E402

COURSE_EPOCH_S = 123.0  # the course's seconds an epoch for ResNet-18 on CIFAR-10 (its GPU)
COURSE_FLIP_ACC = 0.754  # the course's test accuracy with flips
SPEEDUP_TARGET = 20.0
AIRBENCH_TARGET = 0.94
AMP_TOLERANCE = 0.015  # mixed precision must train within this of float32
CPU_ONE_MINUTE_ACC = 0.802  # cpu_fast_cifar_1min on the 2-core CPU, mean of 5 seeds (bench/NOTES_time_to_accuracy.md)
# --smoke: the same code paths on the embedded dataset, a few steps each
SMOKE = {"data.dataset": "shapes", "data.subset": 0.25, "run.epochs": 1, "run.batch_size": 64, "run.eval_every": 1,
         "run.device": "cpu", "run.compile": False, "model.options.width": 0.25}


@dataclass
class Check:
    name: str
    figure: str
    met: bool | None  # None: nothing to hold it against

    def line(self) -> str:
        verdict = {True: "met", False: "NOT met", None: "-"}[self.met]
        return f"  {self.name:<48} {self.figure:<40} {verdict}"


def configured(cfg: TrainConfig, smoke: bool, **overrides) -> TrainConfig:
    """cfg with overrides; in --smoke, cut to the tiny CPU run (keeping what the section exercises)."""
    changes = dict(overrides)
    if smoke:
        model = dict(SMOKE)
        if cfg.model.name != "fastcnn":  # ResNet-18 at 8 channels rather than 64
            model["model.options.width"] = 8
        changes = {**model, **{k: v for k, v in changes.items() if k.startswith("run.amp")}}
    return apply_overrides(cfg, changes)


def dataset(smoke: bool) -> str:
    return "shapes" if smoke else common.cifar_dataset_name()


def device_section() -> list[Check]:
    picked = pick_device("auto")
    amp = autocast_dtype("auto", picked)
    print(f"\n1. device: 'auto' picks {describe_device(picked, 1, amp)} "
          f"(CUDA {torch.cuda.is_available()}, MPS {torch.backends.mps.is_available()})")
    checks = [Check("'auto' picks the GPU when there is one", str(picked),
                    picked.type == "cuda" if torch.cuda.is_available() else None)]
    absent = [name for name, present in (("cuda", torch.cuda.is_available()), ("mps", torch.backends.mps.is_available()))
              if not present]
    for name in absent:
        try:
            pick_device(name)
            refused = False
        except ConfigError as exc:
            refused = True
            print(f"   asking for {name!r} here: {exc}")
        checks.append(Check(f"an absent {name!r} is refused with a message", "refused" if refused else "accepted", refused))
    return checks


def timed(cfg: TrainConfig, label: str) -> common.TimedRun:
    print(f"   {label}: {cfg.model.name} {cfg.run.epochs} epochs, batch {cfg.run.batch_size}, amp {cfg.run.amp}, "
          f"compile {cfg.run.compile}", flush=True)
    run = common.timed_training(cfg, lambda p, r: print(
        f"     epoch {p['epoch']:3d}  {p['train_s']:7.1f} s  {p['test_acc']:7.2%}", flush=True))
    print(f"     on {run.device}: {run.images_per_s:,.0f} img/s, setup {run.setup_s:.1f} s, eval {run.eval_s:.1f} s")
    return run


def precision_section(smoke: bool) -> list[Check]:
    print("\n2. mixed precision: cpu_fast_cifar_1min on this device")
    base = recipe("cpu_fast_cifar_1min", dataset=dataset(smoke), overrides={"run.device": "auto"})
    modes = ("off", "bf16") if smoke else ("off", "bf16", "fp16")
    finals = {}
    for amp in modes:
        finals[amp] = timed(configured(base, smoke, **{"run.amp": amp}), f"amp {amp}").points[-1]["test_acc"]
    checks = [Check(f"float32 on the GPU as on the CPU ({CPU_ONE_MINUTE_ACC:.1%})", f"{finals['off']:.2%}",
                    None if smoke else finals["off"] >= CPU_ONE_MINUTE_ACC - AMP_TOLERANCE)]
    for amp in modes[1:]:
        gap = finals[amp] - finals["off"]
        checks.append(Check(f"{amp} trains as float32 does", f"{finals[amp]:.2%} ({gap:+.2%})",
                            None if smoke else gap >= -AMP_TOLERANCE))
    return checks


def preset_section(smoke: bool) -> list[Check]:
    print("\n3. gpu_fast_cifar: time to 94%")
    run = timed(configured(recipe("gpu_fast_cifar", dataset=dataset(smoke)), smoke), "gpu_fast_cifar")
    reached = run.first_reaching(AIRBENCH_TARGET)
    figure = f"{reached['train_s']:.1f} s (epoch {reached['epoch']})" if reached else \
        f"not reached: best {max(p['test_acc'] for p in run.points):.2%}"
    return [Check("gpu_fast_cifar reaches 94%", figure, None if smoke else reached is not None)]


def airbench_section(script: str) -> list[Check]:
    print(f"\n4. airbench94 side by side: python {script}")
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=300, check=False)
    wall = time.perf_counter() - start
    for line in (proc.stdout + proc.stderr).strip().splitlines()[-15:]:
        print(f"   | {line}")
    return [Check("airbench94 ran (its own figures above)", f"exit {proc.returncode}, {wall:.0f} s wall",
                  proc.returncode == 0)]


def course_section(smoke: bool) -> list[Check]:
    print("\n5. the course's flip experiment: ResNet-18, Adam 1e-3, batch 256, 10 epochs, flips")
    cfg = apply_overrides(TrainConfig(), {**COURSE_FLIP, "data.dataset": dataset(smoke), "run.amp": "auto",
                                          "run.channels_last": True, "run.eval_every": 10})
    run = timed(configured(cfg, smoke), "course flip")
    epochs = run.points[-1]["epoch"]
    per_epoch = run.points[-1]["train_s"] / epochs
    accuracy = run.points[-1]["test_acc"]
    return [Check(f"test accuracy >= the course's {COURSE_FLIP_ACC:.1%}", f"{accuracy:.2%}",
                  None if smoke else accuracy >= COURSE_FLIP_ACC),
            Check(f"an epoch >= {SPEEDUP_TARGET:.0f}x faster than {COURSE_EPOCH_S:.0f} s",
                  f"{per_epoch:.2f} s ({COURSE_EPOCH_S / per_epoch:.0f}x)",
                  None if smoke else COURSE_EPOCH_S / per_epoch >= SPEEDUP_TARGET)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="run every section tiny on the CPU (figures mean nothing)")
    parser.add_argument("--airbench", metavar="PATH", help="the public airbench94.py, run side by side (never committed)")
    args = parser.parse_args(argv)
    print(common.machine_line())
    if torch.cuda.is_available():
        print(f"GPU: {torch.cuda.get_device_name(0)}")
    elif not args.smoke:
        print("No CUDA GPU here: the GPU figures are not measured. (--smoke runs the code paths on the CPU.)")
        return 1
    else:
        print("--smoke: every section on the CPU at a tiny size; the figures mean nothing")
    start = time.perf_counter()
    checks = device_section()
    checks += precision_section(args.smoke)
    checks += preset_section(args.smoke)
    if args.airbench:
        checks += airbench_section(args.airbench)
    checks += course_section(args.smoke)
    print(f"\nsummary ({time.perf_counter() - start:.0f} s{', smoke: not GPU figures' if args.smoke else ''})")
    for check in checks:
        print(check.line())
    return 0 if all(c.met is not False for c in checks) else 2


if __name__ == "__main__":
    sys.exit(main())
