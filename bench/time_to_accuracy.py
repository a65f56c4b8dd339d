"""Time to accuracy on full CIFAR-10 (50,000 train / 10,000 test) with the CPU recipes.

Each recipe (core.runs.recipes) trains through core's own trainer, exactly as the dashboard and the
CLI would run it, on /work/shared/data/cifar10.zip. At every evaluation the script prints the
test accuracy against the training clock.

How time is counted: the training clock is the sum of the trainer's step times (each Step
event's batch size / images_per_s), so it covers batch making, augmentation, forward, backward
and the optimiser, and leaves out loading the dataset, building the model and evaluating.
Those are reported apart (setup and eval columns), so nothing is hidden.

Targets on a 2-core laptop CPU: >= 70% test accuracy within 60 s of training
(cpu_fast_cifar_1min) and >= 85% within 300 s (cpu_fast_cifar). The machine's load average is
printed with every evaluation: on a shared machine the clock runs slow, and the accuracy at a
given epoch is the figure that does not depend on the load.

    python bench/time_to_accuracy.py                                   # both recipes, ~7 minutes
    python bench/time_to_accuracy.py --recipe cpu_fast_cifar_1min
    python bench/time_to_accuracy.py --recipe cpu_fast_cifar --set run.epochs=10 --set model.options.width=1.5
"""
from __future__ import annotations

import argparse
import json

import _common as common  # noqa: E402  (puts the project root on sys.path)

from core.runs.recipes import RECIPES, recipe  # noqa: E402
from core.training.config import parse_value  # noqa: E402

TARGETS = {"cpu_fast_cifar_1min": (60.0, 0.70), "cpu_fast_cifar": (300.0, 0.85)}  # recipe: (seconds, accuracy)


def run_recipe(name: str, overrides: dict) -> dict:
    cfg = recipe(name, dataset=common.cifar_dataset_name(), overrides=overrides)
    print(f"\n{name}: {cfg.model.name} {cfg.model.options}, {cfg.run.epochs} epochs of batch {cfg.run.batch_size}, "
          f"lr {cfg.optim.lr:g}, amp {cfg.run.amp}, channels_last {cfg.run.channels_last}", flush=True)
    headers = ("epoch", "train s", "test acc", "setup s", "eval s (total)", "img/s", "load avg")
    print("  " + "  ".join(headers), flush=True)

    def line(point: dict, run: common.TimedRun) -> None:
        print(f"  {point['epoch']:5d}  {point['train_s']:7.1f}  {point['test_acc']:8.2%}  {run.setup_s:7.1f}  "
              f"{run.eval_s:14.1f}  {run.images_per_s:5.0f}  {point['load']:8.1f}", flush=True)

    run = common.timed_training(cfg, line)
    result = {"recipe": name, "overrides": overrides, "points": run.points, "setup_s": round(run.setup_s, 1),
              "eval_s": round(run.eval_s, 1), "wall_s": round(run.wall_s, 1)}
    if name in TARGETS and not overrides:
        budget, goal = TARGETS[name]
        best = run.best_within(budget)
        verdict = "met" if best is not None and best >= goal else "NOT met"
        shown = "nothing evaluated" if best is None else f"{best:.2%}"
        print(f"  target >= {goal:.0%} within {budget:.0f} s of training: {verdict} ({shown})")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", action="append", choices=list(RECIPES), help="recipe to run (repeatable; default: both CPU recipes)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key, e.g. run.epochs=10")
    parser.add_argument("--json", help="append each recipe's result as one JSON line to this file")
    args = parser.parse_args()
    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects KEY=VALUE, got {item!r}")
        overrides[key.strip()] = parse_value(value)

    common.load_cifar10()  # decode once (cached) so the first recipe's setup time is not the decode
    print(common.machine_line())
    for name in args.recipe or ["cpu_fast_cifar_1min", "cpu_fast_cifar"]:
        result = run_recipe(name, overrides)
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
