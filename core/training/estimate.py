"""How long will a run take here? Time a few real training steps of its config, then multiply.

    est = estimate(cfg)                  # a few seconds the first time, instant afterwards
    est.total_s, est.seconds_per_step    # whole run, one optimiser step

The steps are the trainer's own: its data loading, batch maker (augmentation and mixing), model,
optimiser and loss, on the device the run would use. Only the parts of the config that change
the cost of a step (data, model, augmentation, tricks, batch size, device, precision) key the
cache, so editing the learning rate, the schedule or the number of epochs re-estimates at once.
Nothing here imports streamlit; the training page shows the result.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

from core.i18n import _
from core.training.config import TrainConfig
from core.training.events import Failed, Started, Step
from core.training.loop import train_events

# A training run is a fresh Python process: importing torch and the project before the first
# step. Measured on a 2-core laptop (about 4 s); a second or two either way does not change
# what the estimate is for, which is choosing between "a minute" and "an hour".
PROCESS_START_S = 4.0


class EstimateError(ValueError):
    """The config cannot train (the trainer's own message, e.g. a dataset that will not load)."""


@dataclass(frozen=True)
class StepTiming:
    """What a few real steps of one config cost on this machine."""

    seconds_per_step: float  # mean over the timed steps (the first, warm-up step is not counted)
    eval_seconds: float  # one evaluation of the whole test split
    setup_seconds: float  # loading the data and building the model, plus starting the process
    steps_per_epoch: int
    train_size: int
    test_size: int
    device: str  # as the trainer describes it, e.g. "cpu (2 threads)"
    n_params: int
    timed_steps: int


@dataclass(frozen=True)
class Estimate:
    timing: StepTiming
    total_steps: int
    evaluations: int
    total_s: float

    @property
    def seconds_per_step(self) -> float:
        return self.timing.seconds_per_step


def speed_key(cfg: TrainConfig) -> str:
    """The parts of a config that change how long one step takes, as canonical JSON."""
    tree = cfg.to_dict()
    run = tree["run"]
    key = {
        "data": tree["data"],
        "model": tree["model"],
        "augment": tree["augment"],
        "tricks": tree["tricks"],
        "optimizer": tree["optim"]["name"],
        "run": {k: run[k] for k in ("batch_size", "device", "threads", "amp", "channels_last", "compile")},
    }
    return json.dumps(key, sort_keys=True)


def estimate(cfg: TrainConfig, *, steps: int = 3, budget_s: float = 10.0) -> Estimate:
    """The whole run's duration from `time_steps` (cached per speed_key), its epochs and evaluations."""
    timing = time_steps(cfg, steps=steps, budget_s=budget_s)
    total_steps = timing.steps_per_epoch * cfg.run.epochs
    evaluations = len({*range(cfg.run.eval_every, cfg.run.epochs + 1, cfg.run.eval_every), cfg.run.epochs})
    total = timing.setup_seconds + total_steps * timing.seconds_per_step + evaluations * timing.eval_seconds
    return Estimate(timing=timing, total_steps=total_steps, evaluations=evaluations, total_s=total)


def time_steps(cfg: TrainConfig, *, steps: int = 3, budget_s: float = 10.0) -> StepTiming:
    """Time up to `steps` training steps (fewer if they exceed `budget_s`) after one warm-up step.

    Raises EstimateError with the trainer's message for a config that cannot run (a dataset that
    does not load, a pipeline that changes the image size). Cached per speed_key: the same config
    is never timed twice in one process.
    """
    return _time_steps(speed_key(cfg), steps, budget_s)


@functools.lru_cache(maxsize=32)
def _time_steps(key: str, steps: int, budget_s: float) -> StepTiming:
    spec = json.loads(key)
    cfg = TrainConfig.from_dict(
        {
            "data": spec["data"],
            "model": spec["model"],
            "augment": spec["augment"],
            "tricks": spec["tricks"],
            "optim": {"name": spec["optimizer"]},
            # Enough steps to time and no evaluation in between: evaluations are costed apart.
            "run": {**spec["run"], "epochs": steps + 2, "eval_every": 10_000},
        }
    )
    return _measure(cfg, steps, budget_s)


def _measure(cfg: TrainConfig, steps: int, budget_s: float) -> StepTiming:
    # The trainer's own loop, stopped after a few steps: the same data loading, augmentation,
    # mixing, model, optimiser and loss as the real run, with no copy of any of it here.
    walls: list[float] = []
    started = None

    def enough() -> bool:
        timed = len(walls) - 1  # the first step pays one-off costs (allocator, cuDNN autotuning)
        return timed >= steps or (timed >= 1 and walls[-1] - walls[0] >= budget_s)

    for event in train_events(cfg, should_stop=enough):
        if isinstance(event, Started):
            started = event
        elif isinstance(event, Step):
            walls.append(event.wall)
        elif isinstance(event, Failed):
            raise EstimateError(event.message)
    if started is None or len(walls) < 2:
        raise EstimateError(_("the timing run ended before two steps were done"))  # epochs >= 3: never
    per_step = (walls[-1] - walls[0]) / (len(walls) - 1)
    # The first step's wall clock includes loading the data and building the model.
    setup = max(0.0, walls[0] - per_step)
    batch = min(cfg.run.batch_size, started.train_size)
    # An evaluation is a forward pass over the test split without gradients: about a third of
    # the cost of a training step per image (one forward against forward plus backward).
    eval_seconds = per_step / batch * started.test_size / 3
    return StepTiming(
        seconds_per_step=per_step,
        eval_seconds=eval_seconds,
        setup_seconds=setup + PROCESS_START_S,
        steps_per_epoch=started.steps_per_epoch,
        train_size=started.train_size,
        test_size=started.test_size,
        device=started.device,
        n_params=started.n_params,
        timed_steps=len(walls) - 1,
    )


def clear_cache() -> None:
    """Forget every timing, e.g. after the machine got less busy."""
    _time_steps.cache_clear()


def format_duration(seconds: float) -> str:
    """'45 s', '3 min 20 s', '2 h 05 min': rounded the way a person reads an estimate."""
    seconds = max(0.0, seconds)
    if seconds < 90:
        return _("{seconds:.0f} s").format(seconds=seconds)
    minutes = seconds / 60
    if minutes < 60:
        whole = int(seconds // 60)
        if minutes < 10:
            return _("{minutes} min {seconds:02d} s").format(minutes=whole, seconds=int(seconds - whole * 60))
        return _("{minutes:.0f} min").format(minutes=minutes)
    hours = int(minutes // 60)
    return _("{hours} h {minutes:02d} min").format(hours=hours, minutes=int(minutes - hours * 60))
