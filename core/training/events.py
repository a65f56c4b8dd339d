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

from core.i18n import _


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
    message: str = field(default_factory=lambda: _("stopped on request"))
    weights_path: str | None = None


@dataclass(frozen=True)
class Failed:
    message: str  # for the user: what went wrong and, where known, what to change
    step: int = 0
    detail: str = ""  # traceback of an unexpected error, for a bug report


@dataclass(frozen=True)
class BatchSample:
    """A few images of one training batch exactly as the model received them (after the pipeline
    and any mixing, before normalisation), a few times a minute: what the Train page shows live."""

    step: int  # the step that trained on this batch
    epoch: float
    images: Any  # uint8 numpy [k, C, H, W]
    # Per image, the loss's target as (class index, weight) pairs, largest first, label smoothing
    # included; what is left below the pairs shown is spread over the other classes.
    targets: list[list[tuple[int, float]]]
    drawn: list[list[str]]  # per image: what each augmentation step and the mixer drew, in words


Event = Started | Step | BatchSample | Eval | Finished | Stopped | Failed
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
            values = dict(
                run_id=event.run_id, model=event.config["model"]["name"], dataset=event.config["data"]["dataset"],
                train_size=event.train_size, test_size=event.test_size, n_params=event.n_params,
                device=event.device, total_steps=event.total_steps,
            )
            if event.run_id:
                return _(
                    "run {run_id}: {model} on {dataset} ({train_size} train / {test_size} test images, "
                    "{n_params:,} parameters) on {device}, {total_steps} steps"
                ).format(**values)
            return _(
                "{model} on {dataset} ({train_size} train / {test_size} test images, {n_params:,} parameters) "
                "on {device}, {total_steps} steps"
            ).format(**values)
        if isinstance(event, Step):
            if event.step % self.every and event.step != self.total_steps:
                return None
            return _(
                "step {step:>6}/{total_steps}  epoch {epoch:6.2f}  loss {loss:.4f}  acc {acc:.3f}  lr {lr:.3g}  "
                "{images_per_s:,.0f} img/s"
            ).format(
                step=event.step, total_steps=self.total_steps, epoch=event.epoch, loss=event.loss, acc=event.acc,
                lr=event.lr, images_per_s=event.images_per_s,
            )
        if isinstance(event, Eval):
            return _(
                "epoch {epoch}: train loss {train_loss:.4f} acc {train_acc:.3f} | test loss {test_loss:.4f} "
                "acc {test_acc:.3f}  ({wall:.1f} s)"
            ).format(
                epoch=event.epoch, train_loss=event.train_loss, train_acc=event.train_acc,
                test_loss=event.test_loss, test_acc=event.test_acc, wall=event.wall,
            )
        if isinstance(event, Finished):
            return _("finished: test acc {test_acc:.4f} in {wall:.1f} s").format(
                test_acc=event.metrics["test_acc"], wall=event.metrics["wall"],
            )
        if isinstance(event, Stopped):
            return _("stopped at step {step} ({message})").format(step=event.step, message=event.message)
        if isinstance(event, Failed):
            return _("failed: {message}").format(message=event.message)
        return None
