"""The vocabulary of a training run: typed events the trainer emits, and the sinks that render them.

A run emits exactly one `Started` (unless it fails while setting up), any number of `Step` and
`Eval` events, and exactly one final event: `Finished`, `Stopped` or `Failed`. A sink is any
callable that takes an event; the store sink records them, the console sink prints them, the
page and the tests pass their own callables.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO


@dataclass(frozen=True)
class Started:
    run_id: str | None
    config: dict[str, Any]  # TrainConfig.to_dict() of the run
    device: str  # the device actually used, e.g. "cpu (2 threads)" or "cuda:0 (NVIDIA H100)"
    n_params: int
    steps_per_epoch: int
    total_steps: int
    train_size: int
    test_size: int
    classes: tuple[str, ...]
    in_channels: int
    image_size: int
    mean: tuple[float, ...]  # normalisation the model expects, needed again to predict
    std: tuple[float, ...]
    versions: dict[str, Any] = field(default_factory=dict)  # core.versions.versions(): what trained it


@dataclass(frozen=True)
class Step:
    step: int  # optimiser steps done so far, 1-based
    epoch: float  # fractional epoch at the end of this step
    loss: float
    acc: float  # accuracy on this (augmented, possibly mixed) batch against its dominant label
    lr: float  # lr of the body's parameter group for this step
    images_per_s: float
    wall: float  # seconds since the run started


@dataclass(frozen=True)
class Eval:
    epoch: int
    step: int
    train_loss: float  # mean over the epoch's batches, augmented as trained
    train_acc: float
    test_loss: float
    test_acc: float
    wall: float


@dataclass(frozen=True)
class Finished:
    metrics: dict[str, float]  # test_loss, test_acc, train_loss, train_acc, wall
    classes: tuple[str, ...]
    confusion: list[list[int]]  # confusion[true][predicted] on the test split
    per_class_acc: dict[str, float]
    # Misclassified test images for a gallery, most confidently wrong first:
    # {"index": test index, "true": class index, "predicted": class index, "confidence": p}.
    misclassified: list[dict[str, Any]] = field(default_factory=list)
    weights_path: str | None = None


@dataclass(frozen=True)
class Stopped:
    step: int
    epoch: float
    wall: float
    message: str = "stopped on request"
    weights_path: str | None = None


@dataclass(frozen=True)
class Failed:
    message: str  # for the user: what went wrong and, where known, what to change
    step: int = 0
    detail: str = ""  # traceback of an unexpected error, for a bug report


Event = Started | Step | Eval | Finished | Stopped | Failed
FinalEvent = Finished | Stopped | Failed
Sink = Callable[[Event], None]


class ConsoleSink:
    """Progress lines for the CLI: one line per `every` steps, one per evaluation, one at the end."""

    def __init__(self, stream: TextIO | None = None, every: int = 20) -> None:
        self.stream = stream or sys.stdout
        self.every = every
        self.total_steps = 0

    def __call__(self, event: Event) -> None:
        line = self.format(event)
        if line:
            print(line, file=self.stream, flush=True)

    def format(self, event: Event) -> str | None:
        if isinstance(event, Started):
            self.total_steps = event.total_steps
            name = f"run {event.run_id}: " if event.run_id else ""
            return (
                f"{name}{event.config['model']['name']} on {event.config['data']['dataset']} "
                f"({event.train_size} train / {event.test_size} test images, {event.n_params:,} parameters) "
                f"on {event.device}, {event.total_steps} steps"
            )
        if isinstance(event, Step):
            if event.step % self.every and event.step != self.total_steps:
                return None
            return (
                f"step {event.step:>6}/{self.total_steps}  epoch {event.epoch:6.2f}  loss {event.loss:.4f}  "
                f"acc {event.acc:.3f}  lr {event.lr:.3g}  {event.images_per_s:,.0f} img/s"
            )
        if isinstance(event, Eval):
            return (
                f"epoch {event.epoch}: train loss {event.train_loss:.4f} acc {event.train_acc:.3f} | "
                f"test loss {event.test_loss:.4f} acc {event.test_acc:.3f}  ({event.wall:.1f} s)"
            )
        if isinstance(event, Finished):
            return f"finished: test acc {event.metrics['test_acc']:.4f} in {event.metrics['wall']:.1f} s"
        if isinstance(event, Stopped):
            return f"stopped at step {event.step} ({event.message})"
        if isinstance(event, Failed):
            return f"failed: {event.message}"
        return None
