"""Every preset on the real data in ../shared/data, several seeds: does it show the course's effect?

Each preset is planned as the Train page plans it on a machine without a GPU (its classroom
budget, or --budget longer), with the shared data registered as the kinds the presets ask for
(cifar10.zip as CIFAR-10, flowers5.zip as photos; MNIST is absent there, so the embedded
scikit-learn digits stand in, as on any machine without MNIST). Every run is trained in this
process through core.cli.run, the CLI's path, once per seed. A run whose config and seed were
already trained in this invocation (the flips-and-crops baseline shared by the trick presets) is
reused, and says so.

For each preset it prints the dataset, the budget, each run's mean ± std final test accuracy over
the seeds, each contrast's difference with its 95% interval and verdict (core.runs.verdict, Welch's
t-interval), whether that is the course's direction, and the wall time of the whole preset at one
seed a run (what a class waits for).

    python bench/presets_real.py                               # every preset, 3 seeds (about 75 minutes)
    python bench/presets_real.py --preset flip --seeds 3
    python bench/presets_real.py --preset mixup --budget longer
    python bench/presets_real.py --out results.jsonl           # one JSON line per run, for the README table
    python bench/presets_real.py --preset mnist_mlp_cnn --dataset zip:../shared/data/fashion-mnist.zip
    python bench/presets_real.py --preset mixup --images 2500 --set run.epochs=60   # a candidate budget
    python bench/presets_real.py --preset flip --export-dir assets/recorded     # the shipped recorded runs

Runs go to a temporary AUGLAB_HOME (or --home, which keeps the decoded datasets between calls).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import _common as common  # noqa: E402  (puts the project root on sys.path)

DATA = common.ROOT.parent / "shared" / "data"
ZIPS = {"cifar10": "cifar10.zip", "fashion_mnist": "fashion-mnist.zip", "photos": "flowers5.zip"}


def register_shared_data(data: Path) -> list[str]:
    from core.data import sources

    said = []
    for kind, file in ZIPS.items():
        path = data / file
        if path.exists():
            sources.register(kind, f"zip:{path}")
            said.append(f"{file} as {sources.KINDS[kind].label}")
    return said


def train(cfg, name: str, cache: dict) -> dict:
    from core import cli
    from core.runs import store

    key = cfg.to_json()
    if key in cache:
        return {**cache[key], "reused": True}
    start = time.perf_counter()
    run_id = cli.run(cfg, name)
    wall = time.perf_counter() - start
    record = store.get_run(run_id)
    final = (record.summary or {}).get("final", {})
    result = {"id": run_id, "status": record.status, "message": record.message,
              "acc": final.get("test_acc"), "wall_s": wall, "reused": False}
    cache[key] = result
    return result


def candidate(cfg, images: int | None, sets: dict):
    """A run of the plan at a candidate budget: `images` training images, then the --set overrides."""
    from core.data import sources
    from core.training.config import apply_overrides

    if images:
        size = sources.train_size(cfg.data.dataset)
        if not size:
            raise SystemExit(f"--images: the size of {cfg.data.dataset} is not known")
        cfg = apply_overrides(cfg, {"data.subset": None if images >= size else round(images / size, 4)})
    return apply_overrides(cfg, sets) if sets else cfg


def bench_preset(name: str, seeds: int, budget: str | None, cache: dict, out, dataset: str | None = None,
                 images: int | None = None, sets: dict | None = None) -> dict:
    from core.runs import presets, verdict

    plan = presets.plan_preset(name, "cpu", budget=budget, seeds=seeds, dataset=dataset)
    if not plan.runnable:
        return {"preset": name, "blocked": plan.blocked}
    runs = {}
    ids = []
    for run_name, cfg in plan.runs:
        cfg = candidate(cfg, images, sets or {})
        label = run_name.split(" · ", 1)[1]
        results = []
        for seed_cfg in presets.seeded(cfg, seeds):
            r = train(seed_cfg, f"{run_name} · seed {seed_cfg.run.seed}", cache)
            results.append(r)
            ids.append(r["id"])
            line = {"preset": name, "run": label, "seed": seed_cfg.run.seed, **r}
            print("   ", json.dumps(line), flush=True)
            if out:
                out.write(json.dumps(line) + "\n")
                out.flush()
        runs[label] = results
    accs = {label: [r["acc"] for r in rs if r["acc"] is not None] for label, rs in runs.items()}
    contrasts = []
    for a, b, expect in presets.contrasts(name):
        v = verdict.welch(accs[a], accs[b], f"{b} vs {a}")
        course = (v.difference > 0) if expect > 0 else (v.difference < 0) if expect < 0 else None
        shown = v.beyond_noise and course if expect else not v.beyond_noise
        contrasts.append({"a": a, "b": b, "sentence": v.sentence, "expect": expect, "shown": bool(shown)})
    first = candidate(plan.runs[0][1], images, sets or {})
    one_seed_wall = sum(rs[0]["wall_s"] for rs in runs.values())
    return {
        "preset": name, "dataset": plan.source, "budget": plan.budget,
        "setting": f"{first.model.name}, {common_images(first)} images, {first.run.epochs} epochs, batch {first.run.batch_size}",
        "runs": {label: (statistics.mean(a) if a else None, statistics.stdev(a) if len(a) > 1 else None, len(a))
                 for label, a in accs.items()},
        "contrasts": contrasts, "one_seed_wall_s": one_seed_wall, "ids": ids,
    }


def common_images(cfg) -> str:
    from core.data import sources

    n = sources.train_size(cfg.data.dataset, subset=cfg.data.subset)
    return f"{n:,}" if n else "?"


def parse_set(item: str) -> tuple[str, object]:
    key, sep, raw = item.partition("=")
    if not sep:
        raise SystemExit(f"--set {item!r}: write KEY=VALUE, e.g. run.epochs=60")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw


def main() -> None:
    from core.runs.presets import PRESETS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", action="append", choices=list(PRESETS), help="preset to run (repeatable; default: all)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budget", choices=["classroom", "longer"], default=None)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--dataset", help="run the presets on this dataset instead (e.g. zip:../shared/data/fashion-mnist.zip)")
    parser.add_argument("--out", type=Path, default=None, help="append one JSON line per run here")
    parser.add_argument("--images", type=int, default=None, help="a candidate budget: this many training images")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a candidate budget: a config override on every run (VALUE as JSON, else a string)")
    parser.add_argument("--export-dir", type=Path, default=None,
                        help="write each preset's runs (config, metrics, no weights) to <dir>/<preset>.auglab.zip, "
                             "a run file the Compare page imports")
    args = parser.parse_args()
    sets = dict(parse_set(item) for item in args.set)
    os.environ["AUGLAB_HOME"] = str(args.home or tempfile.mkdtemp(prefix="auglab_bench_real_"))
    print(common.machine_line(), flush=True)
    print("data:", ", ".join(register_shared_data(args.data)) or f"nothing found in {args.data}")
    cache: dict = {}
    names = args.preset or [n for n in PRESETS if PRESETS[n].needs != "shapes"]
    if args.budget == "longer":
        names = [n for n in names if PRESETS[n].longer is not None]
    out = open(args.out, "a") if args.out else None
    table = []
    for name in names:
        print(f"== {name}", flush=True)
        row = bench_preset(name, args.seeds, args.budget, cache, out, args.dataset, args.images, sets)
        table.append(row)
        print(json.dumps(row), flush=True)
        if args.export_dir and "ids" in row:
            from core.runs import transfer

            args.export_dir.mkdir(parents=True, exist_ok=True)
            path = args.export_dir / f"{name}{transfer.SUFFIX}"
            path.write_bytes(transfer.export_runs(list(dict.fromkeys(row["ids"]))))
            print(f"exported {len(set(row['ids']))} runs to {path}", flush=True)
    print("\n| preset | data | budget | runs: mean ± std test accuracy | verdict | course's direction | one seed |")
    print("|---|---|---|---|---|---|---|")
    for row in table:
        if "blocked" in row:
            print(f"| {row['preset']} | — | — | blocked: {row['blocked']} | | | |")
            continue
        runs = "; ".join(f"{k} {m:.1%} ± {s * 100 if s is not None else float('nan'):.1f} ({n})" for k, (m, s, n) in row["runs"].items())
        verdicts = "<br>".join(c["sentence"] for c in row["contrasts"])
        shown = ", ".join("yes" if c["shown"] else "no" for c in row["contrasts"])
        print(f"| {row['preset']} | {row['dataset']} | {row['setting']} | {runs} | {verdicts} | {shown} | {row['one_seed_wall_s'] / 60:.1f} min |")


if __name__ == "__main__":
    main()
