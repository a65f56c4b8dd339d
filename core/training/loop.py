"""The training loop: one config in, a stream of typed events out.

    for event in train_events(cfg):      # or fit(cfg, sinks=[...])
        ...                              # Started, Step..., Eval..., then Finished | Stopped | Failed

`setup` builds what a run trains with (device, data, model, optimiser; each in its own module
of core/training), `Setup.step` takes one optimiser step, and `train_events` loops over epochs
and batches, evaluates, and reports. Every random choice comes from an explicit generator seeded
from `run.seed`, so a CPU run repeats exactly.

The loop never raises: a problem ends the run with a `Failed` event whose message says what
went wrong, and a stop request (checked before every step) ends it with `Stopped`.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from core import versions
from core.augment import as_unit_float
from core.i18n import _
from core.training import models
from core.training.batches import BatchMaker, TrainingData, load_data, steps_per_epoch
from core.training.config import TrainConfig
from core.training.device import autocast, autocast_dtype, available_cores, describe_device, pick_device
from core.training.events import Eval, Event, Failed, FinalEvent, Finished, Started, Step, Stopped
from core.training.finetune import apply_freezing, build_model, check_finetune_options, init_source, load_teacher
from core.training.losses import classification_loss, distillation_loss
from core.training.optim import build_optimizer
from core.training.schedules import lr_at
from core.training.seeds import generator

EVAL_BATCH = 1024  # test images per forward pass: no gradients, so larger batches are cheap
# A few images of the current batch, as the model gets them, every this many seconds (and at the
# first step): the Train page's "what the model sees". Cheap: bench/batch_view.py.
BATCH_SAMPLE_EVERY_S = 15.0
BATCH_SAMPLE_SIZE = 8
MAX_MISCLASSIFIED = 200  # kept for the gallery; the most confidently wrong come first


def evaluate(model: torch.nn.Module, data: TrainingData, amp: torch.dtype | None, channels_last: bool):
    """Mean loss, accuracy, and per-image predictions and confidences on the test split."""
    model.eval()
    total_loss, predictions, confidences = 0.0, [], []
    with torch.no_grad(), autocast(data.test_x.device, amp):
        for start in range(0, len(data.test_y), EVAL_BATCH):
            x = data.normalise(as_unit_float(data.test_x[start : start + EVAL_BATCH]))
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = data.test_y[start : start + EVAL_BATCH]
            logits = model(x).float()
            total_loss += F.cross_entropy(logits, y, reduction="sum").item()
            probs = logits.softmax(dim=1)
            confidence, predicted = probs.max(dim=1)
            predictions.append(predicted)
            confidences.append(confidence)
    model.train()
    predicted = torch.cat(predictions)
    n = len(data.test_y)
    accuracy = (predicted == data.test_y).float().mean().item()
    return total_loss / n, accuracy, predicted, torch.cat(confidences)


def save_weights(model: torch.nn.Module, folder: Path | None) -> str | None:
    if folder is None:
        return None
    path = Path(folder) / "weights.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, path)
    return str(path)


def final_report(data: TrainingData, predicted: torch.Tensor, confidence: torch.Tensor) -> dict:
    """Confusion matrix, per-class accuracy and the misclassified test images."""
    classes = data.bundle.classes
    k = len(classes)
    truth = data.test_y.cpu()
    predicted, confidence = predicted.cpu(), confidence.cpu()
    confusion = torch.bincount(truth * k + predicted, minlength=k * k).view(k, k)
    per_class = {
        name: (confusion[i, i].item() / row_total if (row_total := confusion[i].sum().item()) else None)
        for i, name in enumerate(classes)
    }
    wrong = torch.nonzero(predicted != truth).flatten()
    wrong = wrong[confidence[wrong].argsort(descending=True, stable=True)][:MAX_MISCLASSIFIED]
    misclassified = [
        {"index": i, "true": truth[i].item(), "predicted": predicted[i].item(), "confidence": round(confidence[i].item(), 4)}
        for i in wrong.tolist()
    ]
    return {"confusion": confusion.tolist(), "per_class_acc": per_class, "misclassified": misclassified}


# ============================================================================ the loop


@dataclass
class Setup:
    """What a run's steps need, built from its config: device, data on it, model and optimiser.

    The training loop, the learning-rate finder and the time estimate all take their steps
    through `step`, so what they measure is what a run does.
    """

    cfg: TrainConfig
    device: torch.device
    threads: int
    amp: torch.dtype | None
    data: TrainingData
    make_batch: BatchMaker
    model: torch.nn.Module
    forward: Callable[[torch.Tensor], torch.Tensor]  # the model, compiled when run.compile is on
    teacher: Callable[[torch.Tensor], torch.Tensor] | None
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    body_params: list[torch.nn.Parameter]

    @property
    def steps_per_epoch(self) -> int:
        return steps_per_epoch(len(self.data.train_y), self.cfg.run.batch_size)

    def batch_indices(self, order: torch.Tensor, b: int) -> torch.Tensor:
        size = self.cfg.run.batch_size
        return order[b * size : (b + 1) * size]

    def step(self, idx: torch.Tensor, lr: float, keep: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One optimiser step at peak lr `lr` on the training images `idx`: (loss, logits, labels).
        keep: keep that many of the batch's images for `make_batch.sample`."""
        tricks = self.cfg.tricks
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group["lr_mult"]
        x, targets, labels, images = self.make_batch(idx, keep)
        with autocast(self.device, self.amp):
            logits = self.forward(x)
            if self.teacher is not None:
                with torch.no_grad():
                    teacher_logits = self.teacher(images)
                loss = distillation_loss(
                    logits, teacher_logits, targets, tricks.distill_temperature, tricks.distill_alpha,
                    tricks.label_smoothing,
                )
            else:
                loss = classification_loss(logits, targets, tricks.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss, logits, labels


def setup(cfg: TrainConfig, *, compile_model: bool = True) -> Setup:
    """Build everything a run trains with; sets torch's thread count to the run's (callers restore it)."""
    device = pick_device(cfg.run.device)
    threads = cfg.run.threads or available_cores()
    torch.set_num_threads(threads)
    amp = autocast_dtype(cfg.run.amp, device)
    if cfg.model.init_from_run:
        init_source(cfg.model.init_from_run, cfg.model.name)  # a missing source fails before the data loads
    data = load_data(cfg, device)
    make_batch = BatchMaker(cfg, data)
    model = build_model(cfg, data.bundle, device)
    teacher = (
        load_teacher(cfg.tricks.teacher_run_id, data.bundle, device, data.pixel_order) if cfg.tricks.teacher_run_id else None
    )
    optimizer = build_optimizer(model, cfg)
    check_finetune_options(model, optimizer, cfg)
    return Setup(
        cfg=cfg, device=device, threads=threads, amp=amp, data=data, make_batch=make_batch, model=model,
        forward=torch.compile(model) if cfg.run.compile and compile_model else model, teacher=teacher,
        optimizer=optimizer,
        # Loss scaling keeps small fp16 gradients from flushing to zero; bf16 does not need it.
        scaler=torch.amp.GradScaler(device.type, enabled=amp == torch.float16),
        body_params=[p for g in optimizer.param_groups if g["name"] == "body" for p in g["params"]],
    )


def train_events(
    cfg: TrainConfig,
    *,
    run_id: str | None = None,
    should_stop: Callable[[], bool] | None = None,
    artefact_dir: Path | None = None,
    sample_every_s: float = BATCH_SAMPLE_EVERY_S,
) -> Iterator[Event]:
    """Train according to `cfg`, yielding events; weights go to `artefact_dir` when given.
    sample_every_s: seconds between BatchSample events (the first comes with the first step)."""
    should_stop = should_stop or (lambda: False)
    start_time = time.perf_counter()
    step = 0
    previous_threads = torch.get_num_threads()
    try:
        run = setup(cfg)
        data, model, bundle = run.data, run.model, run.data.bundle
        n_train, steps_per_epoch = len(bundle.train_y), run.steps_per_epoch
        total_steps = steps_per_epoch * cfg.run.epochs
        shuffle_generator = generator(cfg.run.seed, "shuffle")
        yield Started(
            run_id=run_id,
            config=cfg.to_dict(),
            device=describe_device(run.device, run.threads, run.amp, cfg.run.amp),
            n_params=models.count_parameters(model),
            steps_per_epoch=steps_per_epoch,
            total_steps=total_steps,
            train_size=n_train,
            test_size=len(bundle.test_y),
            classes=bundle.classes,
            in_channels=bundle.in_channels,
            image_size=bundle.image_size,
            mean=bundle.mean,
            std=bundle.std,
            versions=versions.versions(),
        )

        last_step_end = time.perf_counter()
        next_sample = last_step_end
        for epoch in range(1, cfg.run.epochs + 1):
            # Freeze/unfreeze and frozen batch-norm statistics; also undoes evaluate's model.train().
            apply_freezing(model, run.body_params, cfg, epoch)

            order = torch.randperm(n_train, generator=shuffle_generator).to(run.device)
            epoch_loss = epoch_correct = epoch_seen = 0.0
            for b in range(steps_per_epoch):
                if should_stop():
                    weights = save_weights(model, artefact_dir)
                    yield Stopped(step=step, epoch=step / steps_per_epoch, wall=_since(start_time), weights_path=weights)
                    return

                lr = lr_at(step, total_steps, cfg, steps_per_epoch=steps_per_epoch)
                keep = BATCH_SAMPLE_SIZE if time.perf_counter() >= next_sample else 0
                loss, logits, labels = run.step(run.batch_indices(order, b), lr, keep)
                step += 1

                loss_value = loss.item()
                if not math.isfinite(loss_value):
                    message = (
                        _("loss became NaN at step {step}: the learning rate {lr:g} is probably too high")
                        if math.isnan(loss_value)
                        else _("loss became infinite at step {step}: the learning rate {lr:g} is probably too high")
                    )
                    yield Failed(message.format(step=step, lr=lr), step=step)
                    return
                n = len(labels)
                correct = (logits.argmax(dim=1) == labels).sum().item()
                epoch_loss += loss_value * n
                epoch_correct += correct
                epoch_seen += n
                now = time.perf_counter()
                yield Step(
                    step=step,
                    epoch=(epoch - 1) + (b + 1) / steps_per_epoch,
                    loss=loss_value,
                    acc=correct / n,
                    lr=lr,
                    images_per_s=n / max(now - last_step_end, 1e-9),
                    wall=_since(start_time),
                )
                if keep:
                    sample = run.make_batch.sample(step, (epoch - 1) + (b + 1) / steps_per_epoch, cfg.tricks.label_smoothing)
                    if sample is not None:
                        yield sample
                    next_sample = time.perf_counter() + sample_every_s
                last_step_end = time.perf_counter()

            if epoch % cfg.run.eval_every == 0 or epoch == cfg.run.epochs:
                test_loss, test_acc, predicted, confidence = evaluate(run.forward, data, run.amp, cfg.run.channels_last)
                train_loss, train_acc = epoch_loss / epoch_seen, epoch_correct / epoch_seen
                yield Eval(
                    epoch=epoch, step=step, train_loss=train_loss, train_acc=train_acc,
                    test_loss=test_loss, test_acc=test_acc, wall=_since(start_time),
                )
                # Evaluation time is not training time: do not charge it to the next step.
                last_step_end = time.perf_counter()

        weights = save_weights(model, artefact_dir)
        report = final_report(data, predicted, confidence)
        yield Finished(
            metrics={
                "test_loss": test_loss, "test_acc": test_acc, "train_loss": train_loss,
                "train_acc": train_acc, "steps": step, "wall": _since(start_time),
            },
            classes=bundle.classes,
            weights_path=weights,
            **report,
        )
    except Exception as exc:
        # The project's own errors (config, dataset, augmentation) are ValueErrors with messages
        # written for the user; anything else keeps its type name and traceback for a bug report.
        message = str(exc) if isinstance(exc, ValueError) and str(exc) else f"{type(exc).__name__}: {exc}"
        yield Failed(message, step=step, detail=traceback.format_exc())
    finally:
        torch.set_num_threads(previous_threads)


def _since(start: float) -> float:
    return time.perf_counter() - start


def fit(
    cfg: TrainConfig,
    *,
    sinks: Iterable[Callable[[Event], None]] = (),
    run_id: str | None = None,
    should_stop: Callable[[], bool] | None = None,
    artefact_dir: Path | None = None,
) -> FinalEvent:
    """Run `train_events` to the end, handing every event to every sink; returns the final event."""
    sinks = list(sinks)
    final = None
    for event in train_events(cfg, run_id=run_id, should_stop=should_stop, artefact_dir=artefact_dir):
        for sink in sinks:
            sink(event)
        final = event
    return final
