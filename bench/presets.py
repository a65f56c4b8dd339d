"""How long each Train-page preset takes on this machine, launched as the page launches it.

Each preset is planned for this device with only the embedded datasets available (what a
fresh, offline install has: the shapes, and the digits for MNIST; presets that are not run on the
shapes are listed as such), queued through core.runs.presets.launch_plan exactly as the page's
"Launch preset" button does, and timed from the launch until its last run has ended: training
processes starting, datasets generating, evaluations and the pretraining run of the fine-tuning
preset all count. Target: each preset in about a minute on a 2-core laptop.

    python bench/presets.py                       # every preset, ~10 minutes
    python bench/presets.py --preset mixup --preset cutout

Runs go to a temporary AUGLAB_HOME (or --home), one preset at a time, one run at a time (the
queue's default on a CPU). The load average is printed with every preset: on a shared machine
the clock runs slow.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import _common as common  # noqa: E402  (puts the project root on sys.path)

TARGET_S = 60.0  # "about a minute"


def time_preset(name: str) -> dict:
    from core.data import sources
    from core.runs import presets, runner, store

    # as on a fresh, offline machine: no real dataset found (the digits stand in for MNIST)
    plan = presets.plan_preset(name, device="cpu", resolve=lambda kind: sources.resolve(kind) if kind == "mnist" else None)
    if not plan.runnable:
        return {"preset": name, "runs": 0, "wall_s": 0.0, "failed": "not run on the shapes: " + plan.blocked.split(".")[0]}
    start = time.perf_counter()
    ids = presets.launch_plan(plan)
    records = [runner.wait(run_id, timeout=1800) for run_id in ids]
    wall = time.perf_counter() - start
    runs = store.list_runs()
    mine = runs[runs["name"].str.startswith(plan.title + " · ")]
    failed = mine[mine["status"] != "finished"]
    if not failed.empty:  # e.g. a preset that needs pretrained weights, on a machine that is offline
        return {"preset": name, "runs": len(mine), "wall_s": wall,
                "failed": "; ".join(f"{n}: {m}" for n, m in zip(failed["name"], failed["message"]))}
    return {
        "preset": name,
        "runs": len(mine),
        "wall_s": wall,
        "results": [(r.name.split(" · ", 1)[1], r.summary["final"]["test_acc"]) for r in records],
    }


def main() -> None:
    from core.runs.presets import PRESETS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", action="append", choices=list(PRESETS), help="preset to time (repeatable; default: all)")
    parser.add_argument("--home", type=Path, help="AUGLAB_HOME to use (default: a new temporary folder)")
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="auglab_bench_presets_"))
    os.environ["AUGLAB_HOME"] = str(home)
    print(common.machine_line())
    print(f"AUGLAB_HOME={home}\n")
    print(f"{'preset':<20} {'runs':>4} {'wall s':>7}  {'load':>5}  test accuracy of the compared runs")
    over = []
    for name in args.preset or list(PRESETS):
        result = time_preset(name)
        if "failed" in result:
            print(f"{name:<20} {result['runs']:>4} {'-':>7}  {common.load_average():>5.1f}  failed: {result['failed']}", flush=True)
            continue
        accuracies = ", ".join(f"{run} {acc:.1%}" for run, acc in result["results"])
        print(f"{name:<20} {result['runs']:>4} {result['wall_s']:>7.1f}  {common.load_average():>5.1f}  {accuracies}", flush=True)
        if result["wall_s"] > 1.5 * TARGET_S:
            over.append(name)
    print(f"\ntarget: about {TARGET_S:.0f} s a preset; " + (f"well over it: {', '.join(over)}" if over else "none is well over it"))


if __name__ == "__main__":
    main()
