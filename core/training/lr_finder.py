"""The learning-rate range test (Smith 2015, "Cyclical Learning Rates"; popularised by fastai).

Train a fresh model for a few hundred steps while the lr grows exponentially from tiny to huge,
recording the loss. The loss first stays flat (lr too small to matter), then falls, then
explodes. A good peak lr sits where it falls fastest ("steepest"), or an order of magnitude
below the lr of the lowest loss ("min/10"). Nothing is recorded in the run store.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from core.i18n import _
from core.training.config import TrainConfig
from core.training.finetune import apply_freezing
from core.training.loop import setup
from core.training.seeds import generator

METHODS = ("steepest", "min/10")


def lr_find(
    cfg: TrainConfig,
    *,
    start_lr: float = 1e-6,
    end_lr: float = 10.0,
    num_steps: int = 200,
    smoothing: float = 0.98,
    diverge: float = 4.0,
    method: str = "steepest",
) -> pd.DataFrame:
    """DataFrame of lr, loss (smoothed) and raw_loss per step; df.attrs holds the suggestions.

    Each step is the training loop's own (`Setup.step`): the data (permuted pixels included),
    model (started from model.init_from_run's weights when set), optimiser, augmentation, mixing,
    loss (label smoothing, distillation) and first-epoch freezing are those of `cfg`; its
    schedule is ignored. The test stops early once the smoothed loss exceeds `diverge` times its
    best value.
    attrs: "suggested_lr" (by `method`), "steepest_lr" and "min_lr_div10".
    """
    if not 0 < start_lr < end_lr:
        raise ValueError(_("need 0 < start_lr < end_lr, got {start_lr} and {end_lr}").format(start_lr=start_lr, end_lr=end_lr))
    if num_steps < 2:
        raise ValueError(_("num_steps must be at least 2, got {num_steps}").format(num_steps=num_steps))
    if method not in METHODS:
        raise ValueError(_("method must be one of {methods}, not {method!r}").format(methods=", ".join(METHODS), method=method))

    previous_threads = torch.get_num_threads()
    try:
        # The run's own set-up and step (loss, distillation, loss scaling, freezing included);
        # not compiled, since compiling would take longer than the test itself.
        run = setup(cfg, compile_model=False)
        # The first epoch's freezing: what the run's first steps train, at this lr.
        apply_freezing(run.model, run.body_params, cfg, epoch=1)
        shuffle_generator = generator(cfg.run.seed, "shuffle")
        n, batches_per_pass = len(run.data.train_y), run.steps_per_epoch

        rows = []
        average, best = 0.0, math.inf
        for i in range(num_steps):
            if i % batches_per_pass == 0:
                order = torch.randperm(n, generator=shuffle_generator).to(run.device)
            # Exponential ramp: equal steps in log(lr), so every decade gets the same number of steps.
            lr = start_lr * (end_lr / start_lr) ** (i / (num_steps - 1))
            loss, unused, unused = run.step(run.batch_indices(order, i % batches_per_pass), lr)

            raw = loss.item()
            if not math.isfinite(raw):
                break
            # Bias-corrected exponential moving average: single batches are too noisy to read.
            average = smoothing * average + (1 - smoothing) * raw
            smoothed = average / (1 - smoothing ** (i + 1))
            rows.append((lr, smoothed, raw))
            best = min(best, smoothed)
            if smoothed > diverge * best:
                break
    finally:
        torch.set_num_threads(previous_threads)

    df = pd.DataFrame(rows, columns=["lr", "loss", "raw_loss"])
    if df.empty:
        raise ValueError(_("the loss was not finite even at lr {start_lr:g}; lower start_lr").format(start_lr=start_lr))
    df.attrs["steepest_lr"] = suggest_lr(df, "steepest")
    df.attrs["min_lr_div10"] = suggest_lr(df, "min/10")
    df.attrs["suggested_lr"] = df.attrs["steepest_lr" if method == "steepest" else "min_lr_div10"]
    return df


def suggest_lr(df: pd.DataFrame, method: str = "steepest") -> float:
    """Pick an lr from an lr/loss curve.

    steepest: where the loss falls fastest against log(lr), looking only up to the lowest loss
              (beyond it the curve is the explosion, whose slopes mean nothing).
    min/10:   a tenth of the lr with the lowest loss (fastai's original rule).
    """
    lrs, losses = df["lr"].to_numpy(float), df["loss"].to_numpy(float)
    lowest = int(np.argmin(losses))
    if method == "min/10":
        return float(lrs[lowest] / 10)
    if method != "steepest":
        raise ValueError(_("method must be one of {methods}, not {method!r}").format(methods=", ".join(METHODS), method=method))
    if lowest < 2:
        return float(lrs[lowest] / 10)
    slopes = np.gradient(losses[: lowest + 1], np.log10(lrs[: lowest + 1]))
    return float(lrs[int(np.argmin(slopes))])
