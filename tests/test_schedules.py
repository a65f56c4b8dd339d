"""Schedules against PyTorch's schedulers (the oracle) and against their formulas."""

import math

import pytest
import torch
from torch.optim import lr_scheduler

from core.training.config import TrainConfig
from core.training.schedules import REFERENCE_BATCH, lr_at, lr_setting, peak_lr, schedule_curve


def make_cfg(epochs=4, lr=0.1, batch_size=128, **schedule):
    return TrainConfig.from_dict(
        {"optim": {"lr": lr}, "schedule": schedule, "run": {"epochs": epochs, "batch_size": batch_size}}
    )


def torch_lrs(make_scheduler, base_lr, steps):
    """The lr PyTorch uses at each of `steps` optimiser steps."""
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=base_lr)
    sched = make_scheduler(opt)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def ours(cfg, total, spe=None):
    return [lr_at(s, total, cfg, steps_per_epoch=spe) for s in range(total)]


def test_constant_is_the_peak_lr_everywhere():
    cfg = make_cfg(name="constant", lr=0.3)
    assert ours(cfg, 17) == [0.3] * 17


def test_step_decay_matches_multisteplr():
    cfg = make_cfg(name="step", milestones=[0.3, 0.6, 0.9], gamma=0.2)
    total = 50
    expected = torch_lrs(lambda o: lr_scheduler.MultiStepLR(o, milestones=[15, 30, 45], gamma=0.2), 0.1, total)
    assert ours(cfg, total) == pytest.approx(expected, rel=1e-12)


def test_cosine_matches_cosineannealinglr():
    cfg = make_cfg(name="cosine", min_lr=0.001)
    total = 40
    expected = torch_lrs(lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=total, eta_min=0.001), 0.1, total)
    assert ours(cfg, total) == pytest.approx(expected, rel=1e-9)
    assert ours(cfg, total)[0] == pytest.approx(0.1)


@pytest.mark.parametrize("t_mult", [1, 2, 3])
def test_sgdr_matches_cosineannealingwarmrestarts(t_mult):
    cfg = make_cfg(name="sgdr", t0=7, t0_unit="steps", t_mult=t_mult, min_lr=0.01)
    total = 60
    expected = torch_lrs(
        lambda o: lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=7, T_mult=t_mult, eta_min=0.01), 0.1, total
    )
    assert ours(cfg, total) == pytest.approx(expected, rel=1e-9)


def test_sgdr_period_in_epochs_uses_steps_per_epoch():
    cfg = make_cfg(epochs=6, name="sgdr", t0=1, t0_unit="epochs", t_mult=2)
    lrs = ours(cfg, 60, spe=10)
    # Restarts (back to the peak) after 1 epoch and after 1 + 2 epochs.
    assert [s for s in range(1, 60) if lrs[s] > lrs[s - 1]] == [10, 30]
    assert lrs[10] == lrs[30] == pytest.approx(0.1)


@pytest.mark.parametrize("anneal", ["cos", "linear"])
@pytest.mark.parametrize("total,pct_start", [(100, 0.3), (37, 0.25), (12, 0.5)])
def test_onecycle_matches_onecyclelr(total, pct_start, anneal):
    cfg = make_cfg(name="onecycle", pct_start=pct_start, div_factor=10.0, final_div_factor=100.0, anneal=anneal)
    expected = torch_lrs(
        lambda o: lr_scheduler.OneCycleLR(
            o, max_lr=0.1, total_steps=total, pct_start=pct_start, div_factor=10.0,
            final_div_factor=100.0, anneal_strategy=anneal, cycle_momentum=False,
        ),
        0.1,
        total,
    )
    assert ours(cfg, total) == pytest.approx(expected, rel=1e-9)


def test_linear_warmup_is_linearlr_then_the_schedule_on_the_remaining_steps():
    cfg = make_cfg(epochs=5, name="cosine", warmup=1, warmup_unit="epochs", warmup_start_factor=0.25)
    total, spe, warm = 50, 10, 10
    lrs = ours(cfg, total, spe)
    ramp = torch_lrs(lambda o: lr_scheduler.LinearLR(o, start_factor=0.25, total_iters=warm), 0.1, warm)
    rest = torch_lrs(lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=total - warm), 0.1, total - warm)
    assert lrs[:warm] == pytest.approx(ramp, rel=1e-12)
    assert lrs[warm:] == pytest.approx(rest, rel=1e-9)
    assert lrs[0] == pytest.approx(0.025)


def test_warmup_in_steps_ramps_to_the_first_value_of_the_main_schedule():
    cfg = make_cfg(name="onecycle", warmup=5, warmup_unit="steps", warmup_start_factor=0.0)
    lrs = ours(cfg, 30)
    first_main = lr_at(0, 25, make_cfg(name="onecycle"))
    assert lrs[0] == 0.0
    assert lrs[:5] == pytest.approx([first_main * i / 5 for i in range(5)])
    assert lrs[5] == pytest.approx(first_main)


def test_linear_scaling_rule():
    cfg = make_cfg(name="constant", lr=0.1, batch_size=512, linear_scaling=True)
    assert peak_lr(cfg) == pytest.approx(0.2)
    assert ours(cfg, 3) == pytest.approx([0.2] * 3)
    assert peak_lr(make_cfg(lr=0.1, batch_size=512)) == 0.1


def test_gradual_warmup_goes_from_the_unscaled_to_the_scaled_lr():
    cfg = make_cfg(
        epochs=4, name="constant", lr=0.1, batch_size=1024, linear_scaling=True,
        warmup=2, warmup_kind="gradual", warmup_unit="epochs",
    )
    lrs = ours(cfg, 40, spe=10)
    assert lrs[0] == pytest.approx(0.1)  # the lr that suits a batch of 256
    assert lrs[10] == pytest.approx(0.1 + (0.4 - 0.1) / 2)
    assert lrs[20:] == pytest.approx([0.4] * 20)  # 4x the batch, 4x the lr


def test_steps_outside_the_run_are_clamped():
    cfg = make_cfg(name="cosine")
    assert lr_at(-3, 10, cfg) == lr_at(0, 10, cfg)
    assert lr_at(25, 10, cfg) == lr_at(9, 10, cfg)
    with pytest.raises(ValueError):
        lr_at(0, 0, cfg)


def test_schedule_curve_covers_the_run():
    cfg = make_cfg(epochs=3, name="step", milestones=[0.5], gamma=0.5)
    steps, lrs = schedule_curve(cfg, steps_per_epoch=8)
    assert steps == list(range(24))
    assert lrs == [0.1] * 12 + [0.05] * 12
    assert all(math.isfinite(v) for v in lrs)


@pytest.mark.parametrize("linear_scaling", [False, True])
def test_lr_setting_is_peak_lrs_inverse_with_the_linear_scaling_rule(linear_scaling):
    cfg = TrainConfig.from_dict({"optim": {"lr": 0.1}, "run": {"batch_size": 512}, "schedule": {"linear_scaling": linear_scaling}})
    assert peak_lr(cfg) == pytest.approx(0.1 * (512 / REFERENCE_BATCH if linear_scaling else 1))
    assert lr_setting(cfg, peak_lr(cfg)) == pytest.approx(0.1)
    assert lr_setting(cfg, 0.0123456) == (0.0062 if linear_scaling else 0.012)  # two significant digits
