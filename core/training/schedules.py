"""Learning-rate schedules as pure functions of the optimiser step.

No scheduler objects and no hidden counters: the trainer asks `lr_at(step, total_steps, cfg)`
before every step, and the training page plots `schedule_curve(cfg, steps_per_epoch)` before a
run starts. Each shape follows its PyTorch counterpart (MultiStepLR, CosineAnnealingLR,
CosineAnnealingWarmRestarts, OneCycleLR, LinearLR), which the tests use as oracles.
"""

from __future__ import annotations

import math

from core.i18n import _
from core.training.config import TrainConfig

# Goyal et al. 2017's linear scaling rule: optim.lr is the lr for this many images per batch.
REFERENCE_BATCH = 256


def _scale(cfg: TrainConfig) -> float:
    """How many reference batches one batch of this run is."""
    return cfg.run.batch_size / REFERENCE_BATCH


def peak_lr(cfg: TrainConfig) -> float:
    """The lr the schedule is built around; with the linear scaling rule it grows with the batch."""
    lr = cfg.optim.lr
    if cfg.schedule.linear_scaling:
        # when the batch is k times larger, make the lr k times larger
        lr *= _scale(cfg)
    return lr


def lr_setting(cfg: TrainConfig, peak: float) -> float:
    """The optim.lr that gives peak lr `peak` (peak_lr's inverse), at two significant digits:
    with the linear scaling rule on, optim.lr is per REFERENCE_BATCH images."""
    value = peak / _scale(cfg) if cfg.schedule.linear_scaling else peak
    return float(f"{value:.2g}")


def _in_steps(length: float, unit: str, steps_per_epoch: float) -> int:
    return round(length * steps_per_epoch) if unit == "epochs" else round(length)


def warmup_steps(cfg: TrainConfig, steps_per_epoch: float) -> int:
    s = cfg.schedule
    return _in_steps(s.warmup, s.warmup_unit, steps_per_epoch)


def _warmup_start_factor(cfg: TrainConfig) -> float:
    s = cfg.schedule
    k = _scale(cfg)
    if s.warmup_kind == "gradual" and s.linear_scaling and k > 1:
        # Goyal et al. 2017, "gradual warmup": start from the lr that suits a batch of 256 and
        # reach the k-times larger one at the end of the warmup.
        return 1 / k
    return s.warmup_start_factor


def lr_at(step: int, total_steps: int, cfg: TrainConfig, *, steps_per_epoch: float | None = None) -> float:
    """The lr for optimiser step `step` (0-based) of a run that takes `total_steps` steps.

    Lengths given in epochs are converted with `steps_per_epoch`, by default total_steps / epochs.
    """
    if total_steps < 1:
        raise ValueError(_("total_steps must be >= 1, got {total_steps}").format(total_steps=total_steps))
    spe = steps_per_epoch if steps_per_epoch is not None else total_steps / cfg.run.epochs
    step = min(max(step, 0), total_steps - 1)
    lr = peak_lr(cfg)

    # Phase 1, warmup: a straight line up to where the main schedule starts. The main schedule
    # then runs over the remaining steps, as if the warmup had been prepended to it.
    warmup = min(warmup_steps(cfg, spe), total_steps - 1)
    main_steps = total_steps - warmup
    if step < warmup:
        target = _main_schedule(0, main_steps, lr, cfg, spe)
        start = _warmup_start_factor(cfg)
        return target * (start + (1 - start) * step / warmup)

    # Phase 2, the schedule itself, counted from the end of the warmup.
    return _main_schedule(step - warmup, main_steps, lr, cfg, spe)


def _main_schedule(t: int, total: int, lr: float, cfg: TrainConfig, spe: float) -> float:
    s = cfg.schedule
    if s.name == "constant":
        return lr
    if s.name == "step":
        milestones = [round(m * total) for m in s.milestones]
        return lr * s.gamma ** sum(t >= m for m in milestones)
    if s.name == "cosine":
        return _cosine(t, total, lr, s.min_lr)
    if s.name == "sgdr":
        # Loshchilov & Hutter 2017: cosine cycles that restart at the peak, each t_mult times
        # longer than the one before.
        period = max(1, _in_steps(s.t0, s.t0_unit, spe))
        while t >= period:
            t -= period
            period *= s.t_mult
        return _cosine(t, period, lr, s.min_lr)
    if s.name == "onecycle":
        return _one_cycle(t, total, lr, s.pct_start, s.div_factor, s.final_div_factor, s.anneal)
    raise ValueError(_("unknown schedule {name!r}").format(name=s.name))


def _cosine(t: float, period: float, high: float, low: float) -> float:
    return low + (high - low) * (1 + math.cos(math.pi * t / period)) / 2


def _one_cycle(t: int, total: int, peak: float, pct_start: float, div_factor: float, final_div_factor: float,
               anneal: str = "cos") -> float:
    """Smith & Topin 2017 as PyTorch's OneCycleLR (two phases, cosine or linear annealing) draws it."""
    between = _cosine_between if anneal == "cos" else _linear_between
    start = peak / div_factor
    end = start / final_div_factor
    rise_end = pct_start * total - 1  # the step at which the peak is reached
    if t <= rise_end:
        return between(start, peak, t / rise_end if rise_end > 0 else 1.0)
    fall = (total - 1) - rise_end
    return between(peak, end, (t - rise_end) / fall if fall > 0 else 1.0)


def _cosine_between(a: float, b: float, pct: float) -> float:
    return b + (a - b) / 2 * (math.cos(math.pi * pct) + 1)


def _linear_between(a: float, b: float, pct: float) -> float:
    return a + (b - a) * pct


def schedule_curve(cfg: TrainConfig, steps_per_epoch: int) -> tuple[list[int], list[float]]:
    """(steps, lrs) for a whole run, for plotting the schedule before it starts."""
    total = max(1, cfg.run.epochs * steps_per_epoch)
    steps = list(range(total))
    return steps, [lr_at(s, total, cfg, steps_per_epoch=steps_per_epoch) for s in steps]
