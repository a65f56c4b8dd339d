"""Augmentation-strength sweeps: one setting at several values, several seeds each, and what it shows.

    ids = launch_sweep(config, "tricks.label_smoothing", [0, 0.05, 0.1, 0.2], seeds=3, prefix="ε sweep")
    found = sweep_of(ids)            # once they have finished
    found.points                     # per value: mean final test accuracy and its 95% interval
    found.best, found.verdict        # the best value, and whether it beats the next best beyond seed noise

A setting is a dotted config key ("tricks.label_smoothing", "tricks.mixup_alpha") or a parameter of
one step of the training pipeline: "augment.train[2].magnitude", or one end of a range parameter,
"augment.train[1].scale[0]" (RandomResizedCrop's lower bound). `sweep_of` finds the setting itself
from any runs whose configs differ in that one setting (the seed aside), so a sweep launched here,
a preset or runs picked by hand are read alike.
"""
from __future__ import annotations

import copy
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from core.augment import get_op
from core.i18n import _, tr
from core.runs import compare, runner, store, verdict
from core.training.config import TrainConfig, apply_overrides, config_params

_STEP = re.compile(r"^augment\.train\[(\d+)\]\.(\w+)(?:\[([01])\])?$")
MIN_VALUES = 3  # a curve needs three points
# The tricks whose strength a sweep offers beside the pipeline's parameters.
TRICK_SETTINGS = ("tricks.label_smoothing", "tricks.mixup_alpha", "tricks.cutmix_alpha", "tricks.ricap_beta",
                  "tricks.mix_prob")


@dataclass(frozen=True)
class Point:
    value: float
    n: int  # seeds counted
    mean: float
    low: float | None  # the mean's 95% t-interval; None with one seed
    high: float | None
    accuracies: tuple[float, ...]
    run_ids: tuple[str, ...]


@dataclass(frozen=True)
class Sweep:
    setting: str
    label: str  # the setting in words: "label smoothing ε", "RandAugment magnitude"
    points: tuple[Point, ...]  # in order of value
    best: Point
    verdict: verdict.Verdict | None  # the best against the next best (None: fewer than two points counted)
    pending: int  # runs of the sweep not finished yet


def setting_value(config: TrainConfig | dict, setting: str) -> Any:
    """The setting's value in the config (a pipeline parameter left unset: its declared default)."""
    tree = config.to_dict() if isinstance(config, TrainConfig) else config
    step = _STEP.match(setting)
    if step:
        entry = tree["augment"]["train"][int(step[1])]
        value = get_op(entry["op"]).validate(entry.get("params") or {}).get(step[2])
        return value[int(step[3])] if step[3] is not None and value is not None else value
    node: Any = tree
    for part in setting.split("."):
        node = node[part]
    return node


def with_setting(config: TrainConfig | dict, setting: str, value: float) -> TrainConfig:
    """The config with the setting at `value` (validated as the config and the op declare it)."""
    tree = copy.deepcopy(config.to_dict() if isinstance(config, TrainConfig) else config)
    step = _STEP.match(setting)
    if not step:
        return apply_overrides(TrainConfig.from_dict(tree), {setting: value})
    steps = tree["augment"]["train"]
    index, name = int(step[1]), step[2]
    if index >= len(steps):
        raise ValueError(_("the pipeline has {n} steps; there is no step {index}").format(n=len(steps), index=index))
    op = get_op(steps[index]["op"])
    params = op.validate(steps[index].get("params") or {})
    if name not in params:
        raise ValueError(_("{op} has no parameter {name!r}").format(op=op.name, name=name))
    if step[3] is not None:
        pair = list(params[name])
        pair[int(step[3])] = value
        params[name] = pair
    else:
        params[name] = value
    steps[index] = {"op": op.name, "params": op.validate(params)}
    return TrainConfig.from_dict(tree)


def setting_label(config: TrainConfig | dict, setting: str) -> str:
    """The setting in words, from the declarations: "RandAugment magnitude", "Label smoothing"."""
    tree = config.to_dict() if isinstance(config, TrainConfig) else config
    step = _STEP.match(setting)
    if step:
        op = get_op(tree["augment"]["train"][int(step[1])]["op"])
        param = next((p for p in op.params if p.name == step[2]), None)
        name = tr(param.label) if param is not None and param.label else step[2]
        end = {None: "", "0": " " + _("(lower bound)"), "1": " " + _("(upper bound)")}[step[3]]
        return f"{tr(op.label)} {name}{end}"
    param = config_params().get(setting)
    return tr(param.label) if param is not None and param.label else setting


def value_name(value: float) -> str:
    return f"{value:g}"


def run_name(prefix: str, label: str, value: float) -> str:
    return f"{prefix} · {label} = {value_name(value)}"


def launch_sweep(config: TrainConfig | dict, setting: str, values: Sequence[float], seeds: int = 3,
                 prefix: str | None = None, first_seed: int = 0) -> list[str]:
    """Queue the sweep: every value at `seeds` seeds, named "<prefix> · <setting> = <value> · seed <s>"
    (seed groups per value, which Compare draws as one line each); returns the run ids."""
    values = list(dict.fromkeys(float(v) for v in values))
    if len(values) < MIN_VALUES:
        raise ValueError(_("a sweep needs at least {n} different values").format(n=MIN_VALUES))
    if seeds < 1:
        raise ValueError(_("a sweep needs at least one seed per value"))
    label = setting_label(config, setting)
    configs = [(v, with_setting(config, setting, v)) for v in values]  # every value checked before any is queued
    runner.ensure_room(len(values) * seeds)
    prefix = prefix or _("sweep of {label}").format(label=label)
    ids = []
    for value, cfg in configs:
        ids += compare.launch_seeds(cfg, seeds, first_seed, run_name(prefix, label, value))
    return ids


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _the_setting(groups: Sequence[verdict.Group]) -> str | None:
    """The one setting the groups differ in, as a sweep setting, if it is a number in each."""
    keys = compare.differing_keys([g.config for g in groups])
    if keys == ["augment.train"]:
        pipelines = [g.config["augment.train"] for g in groups]
        if len({len(p) for p in pipelines}) != 1 or len({tuple(s["op"] for s in p) for p in pipelines}) != 1:
            return None
        differing = set()
        for index in range(len(pipelines[0])):
            merged = [get_op(p[index]["op"]).validate(p[index].get("params") or {}) for p in pipelines]
            for name in merged[0]:
                values = [m[name] for m in merged]
                if any(v != values[0] for v in values):
                    if isinstance(values[0], (list, tuple)):
                        ends = [i for i in (0, 1) if len({v[i] for v in values}) > 1]
                        differing |= {f"augment.train[{index}].{name}[{i}]" for i in ends}
                    else:
                        differing.add(f"augment.train[{index}].{name}")
        return differing.pop() if len(differing) == 1 else None
    return keys[0] if len(keys) == 1 else None


def _interval(accuracies: Sequence[float], confidence: float = verdict.CONFIDENCE) -> tuple[float | None, float | None]:
    """The mean's t-interval; (None, None) with one seed."""
    if len(accuracies) < 2:
        return None, None
    low, high = stats.t.interval(confidence, len(accuracies) - 1, loc=np.mean(accuracies), scale=stats.sem(accuracies))
    return float(low), float(high)


def sweep_of(run_ids: Sequence[str]) -> Sweep | None:
    """The sweep these runs make, or None: at least three groups of seeds whose configs differ in
    one numeric setting, each with a finished run."""
    groups = verdict.group_runs(run_ids)
    if len(groups) < MIN_VALUES:
        return None
    setting = _the_setting(groups)
    if setting is None:
        return None
    configs = [store.get_run(group.run_ids[0]).train_config() for group in groups]
    values = [setting_value(config, setting) for config in configs]
    if not all(_number(value) for value in values):
        return None
    values = [float(value) for value in values]
    if len(set(values)) != len(values):
        return None
    points = []
    for value, group in sorted(zip(values, groups), key=lambda item: item[0]):
        if not group.n:
            continue
        low, high = _interval(group.accuracies)
        points.append(Point(value=value, n=group.n, mean=sum(group.accuracies) / group.n, low=low, high=high,
                            accuracies=tuple(group.accuracies), run_ids=tuple(group.run_ids)))
    if not points:
        return None
    label = setting_label(configs[0], setting)
    ranked = sorted(points, key=lambda p: p.mean, reverse=True)
    best = ranked[0]
    said = None
    if len(ranked) > 1:
        said = verdict.welch(ranked[1].accuracies, best.accuracies, _("{label} = {best} against {other}").format(
            label=label, best=value_name(best.value), other=value_name(ranked[1].value)))
    pending = sum(len(g.pending) for g in groups)
    return Sweep(setting=setting, label=label, points=tuple(points), best=best, verdict=said, pending=pending)
