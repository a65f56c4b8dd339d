"""The training loop: one config in, a stream of typed events out.

    for event in train_events(cfg):      # or fit(cfg, sinks=[...])
        ...                              # Started, Step..., Eval..., then Finished | Stopped | Failed

The loop reads top to bottom in named sections: device, data, model, optimiser, loop, eval,
artefacts. The whole dataset sits on the device as uint8; each batch is converted to float,
augmented (every image draws its own parameters), possibly mixed, then normalised. Every random
choice comes from an explicit generator seeded from `run.seed`, so a CPU run repeats exactly.

The loop never raises: a problem ends the run with a `Failed` event whose message says what
went wrong, and a stop request (checked before every step) ends it with `Stopped`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from core import data as datasets
from core import models, store, versions
from core.augment import Pipeline, mixing
from core.config import ConfigError, TrainConfig
from core.events import Eval, Event, Failed, FinalEvent, Finished, Started, Step, Stopped
from core.optim import build_optimizer
from core.permute import permute_pixels, pixel_permutation, unpermute_pixels
from core.predict import load_run_model
from core.schedules import lr_at

EVAL_BATCH = 1024  # test images per forward pass: no gradients, so larger batches are cheap
MAX_MISCLASSIFIED = 200  # kept for the gallery; the most confidently wrong come first


# ============================================================================ losses


def classification_loss(logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy against class indices [N] or soft targets [N, K] (from Mixup and friends).

    With label smoothing the target becomes (1 - eps) * target + eps / K (Szegedy et al. 2016),
    for hard and soft targets alike.
    """
    return F.cross_entropy(logits.float(), targets, label_smoothing=label_smoothing)


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    targets: torch.Tensor,
    temperature: float,
    alpha: float,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Hinton et al. 2015: alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(student, targets).

    Both distributions are softened by the temperature T; the T^2 factor keeps the soft term's
    gradients on the same scale as the hard term's when T changes.
    """
    t = temperature
    soft = F.kl_div(
        F.log_softmax(student_logits.float() / t, dim=1),
        F.log_softmax(teacher_logits.float() / t, dim=1),
        reduction="batchmean",
        log_target=True,
    )
    hard = classification_loss(student_logits, targets, label_smoothing)
    return alpha * t * t * soft + (1 - alpha) * hard


# ============================================================================ set-up helpers


def derived_seed(seed: int, purpose: str) -> int:
    """Independent seeds for shuffling, augmentation and mixing, all from run.seed."""
    digest = hashlib.sha256(f"{seed}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def generator(seed: int, purpose: str) -> torch.Generator:
    return torch.Generator().manual_seed(derived_seed(seed, purpose))


def available_cores() -> int:
    """Cores this process may use (a container's or taskset's limit, not the machine's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def pick_device(requested: str) -> torch.device:
    """"auto" prefers CUDA, then Apple's MPS, then the CPU; an explicit request must be available."""
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("run.device is 'cuda' but PyTorch sees no CUDA GPU here; use 'auto' or 'cpu'")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("run.device is 'mps' but Apple's Metal backend is not available here; use 'auto' or 'cpu'")
    return device


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU computes in bfloat16 natively (AVX-512 or AMX, through oneDNN). On an
    AVX2-only CPU, common in laptops, bf16 autocast is emulated: FastCNN's training step was 12x
    slower than in float32 on an AVX2 AMD EPYC (4.7 s against 0.38 s for a batch of 256)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return torch.backends.cpu.get_cpu_capability() not in ("DEFAULT", "AVX2")


BF16_EMULATED = "float32: this CPU has no native bfloat16, where bf16 autocast runs about 10x slower"


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The mixed-precision dtype, or None for full float32 (also for bf16 on a CPU that would emulate it)."""
    if amp == "off":
        return None
    if amp == "bf16" and device.type == "cpu" and not cpu_has_fast_bf16():
        return None
    if amp == "auto":
        # On by default only on CUDA, where it is well supported and roughly doubles speed;
        # CPU autocast is slower for small convolutions and MPS autocast is still patchy.
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if amp == "fp16" and device.type != "cuda":
        raise ConfigError("run.amp 'fp16' needs a CUDA GPU (it relies on loss scaling); use 'bf16' or 'off'")
    return torch.bfloat16 if amp == "bf16" else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def describe_device(device: torch.device, threads: int, amp: torch.dtype | None, requested: str = "auto") -> str:
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        text = f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    elif device.type == "cpu":
        text = f"cpu ({threads} thread{'s' if threads != 1 else ''})"
    else:
        text = device.type
    if amp is None and requested == "bf16" and device.type == "cpu":
        return f"{text}, {BF16_EMULATED}"
    return text + (f", {str(amp).removeprefix('torch.')} autocast" if amp else "")


@dataclass
class TrainingData:
    """The dataset on the device plus how to turn index batches into model inputs."""

    bundle: datasets.DatasetBundle
    train_x: torch.Tensor  # uint8 on the device
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    mean: torch.Tensor  # [1, C, 1, 1] on the device
    std: torch.Tensor
    pixel_order: torch.Tensor | None = None  # the data.permute_pixels permutation both splits went through

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def image_size_for(cfg: TrainConfig) -> int | None:
    """The side images are resized to: data.image_size, else a pretrained model's own input size
    (224 for torchvision's ImageNet models), else None, the dataset's own size."""
    return cfg.data.image_size or models.input_size(cfg.model.name, cfg.model.options)


def load_data(cfg: TrainConfig, device: torch.device) -> TrainingData:
    d = cfg.data
    size = image_size_for(cfg)
    bundle = datasets.load_dataset(
        d.dataset, image_size=size, subset=d.subset, seed=d.seed, val_ratio=d.val_ratio,
        variant=d.variant, allow_download=d.allow_download,
    )
    notes = [bundle.note]
    if d.image_size is None and size is not None:
        notes.append(f"resized to {size} px, the pretrained {cfg.model.name}'s input size (data.image_size sets another)")
    # Input normalisation follows the model: a pretrained one expects its pretraining data's
    # statistics, whatever the new dataset's are. The run records them, so predictions match.
    stats = models.input_normalisation(cfg.model.name, cfg.model.options, bundle.in_channels)
    if stats is not None:
        notes.append("normalised with ImageNet's mean and std, as the pretrained weights expect")
        bundle = dataclasses.replace(bundle, mean=stats[0], std=stats[1])
    bundle = dataclasses.replace(bundle, note="; ".join(filter(None, notes)))
    order = None
    if d.permute_pixels:
        # At load time, before any augmentation: the permuted images are the dataset. The channel
        # statistics do not change, since every pixel value is kept, only moved.
        side = bundle.image_size
        order = pixel_permutation(side, side, d.seed)
        bundle = dataclasses.replace(
            bundle,
            train_x=permute_pixels(bundle.train_x, order),
            test_x=permute_pixels(bundle.test_x, order),
            note="; ".join(filter(None, [bundle.note, f"pixels permuted (data seed {d.seed})"])),
        )
    shape = (1, bundle.in_channels, 1, 1)
    return TrainingData(
        bundle=bundle,
        train_x=bundle.train_x.to(device),
        train_y=bundle.train_y.to(device),
        test_x=bundle.test_x.to(device),
        test_y=bundle.test_y.to(device),
        mean=torch.tensor(bundle.mean, device=device).view(shape),
        std=torch.tensor(bundle.std, device=device).view(shape),
        pixel_order=order,
    )


def build_model(cfg: TrainConfig, bundle: datasets.DatasetBundle, device: torch.device) -> torch.nn.Module:
    # Seeding the global generator right before building is what makes the initial weights
    # (and dropout masks) repeat: layer constructors draw from it.
    torch.manual_seed(derived_seed(cfg.run.seed, "init"))
    options = cfg.model.options
    if cfg.model.init_from_run and options.get("pretrained"):
        options = {**options, "pretrained": False}  # the stored body replaces ImageNet's: never fetch those
    model = models.build_model(
        cfg.model.name, in_channels=bundle.in_channels, num_classes=bundle.num_classes,
        image_size=bundle.image_size, **options,
    )
    if cfg.model.init != "default":
        models.init_weights(model, cfg.model.init)
    if cfg.model.init_from_run:
        load_body(model, cfg, bundle)
    model = model.to(device)
    if cfg.run.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def init_source(run_id: str, model_name: str) -> tuple[store.RunRecord, Path]:
    """The finished run whose weights start a fine-tuning run, and its weights file.

    Raises ConfigError naming model.init_from_run when the run is unknown, has not finished or
    trained another model, so a queued fine-tuning run fails with a reason before loading any data.
    """
    try:
        record = store.get_run(run_id)
    except store.UnknownRunError:
        raise ConfigError(f"model.init_from_run: there is no run {run_id!r} in the store ({store.db_path()})") from None
    if record.status != "finished":
        raise ConfigError(
            f"model.init_from_run: run {run_id} ({record.name}) is {record.status}; "
            "only a finished run's weights can start another run"
        )
    trained = record.config["model"]["name"]
    if trained != model_name:
        raise ConfigError(
            f"model.init_from_run: run {run_id} ({record.name}) trained a {trained}, not a {model_name}; "
            f"set model.name to {trained} to start from its weights"
        )
    weights = record.folder / (record.summary.get("weights") or "weights.pt")
    if not weights.exists():
        raise ConfigError(f"model.init_from_run: run {run_id} ({record.name}) has no saved weights ({weights})")
    return record, weights


def load_body(model: torch.nn.Module, cfg: TrainConfig, bundle: datasets.DatasetBundle) -> None:
    """Copy every weight but the head's from the run model.init_from_run into `model`.

    The head stays as initialised: it maps features to this dataset's classes, which the source
    run never saw (and it may have had another number of them). Everything else must match in
    shape, which fails, with both runs' settings in the message, when the width, depth, input
    channels or (for models with an image-size-dependent layer) the image size differ.
    """
    run_id = cfg.model.init_from_run
    record, weights = init_source(run_id, cfg.model.name)
    stored = torch.load(weights, map_location="cpu", weights_only=True)
    head = models.head_module(model)
    head_name = next(name for name, module in model.named_modules() if module is head)
    body = {k: v for k, v in model.state_dict().items() if not k.startswith(head_name + ".")}
    for key, value in body.items():
        if key not in stored or stored[key].shape != value.shape:
            theirs = "has no such weight" if key not in stored else f"has shape {tuple(stored[key].shape)}"
            data = record.summary.get("data", {})
            side = data.get("image_size")
            raise ConfigError(
                f"model.init_from_run: run {run_id} ({record.name}) has another architecture: its {key} {theirs}, "
                f"this run's has shape {tuple(value.shape)}. That run trained {cfg.model.name} with options "
                f"{record.config['model']['options'] or 'at their defaults'} on {data.get('in_channels')}-channel "
                f"{side}x{side} images; this one has options {cfg.model.options or 'at their defaults'} and "
                f"{bundle.in_channels}-channel {bundle.image_size}x{bundle.image_size} images"
            )
    model.load_state_dict({k: stored[k] for k in body}, strict=False)


def apply_freezing(model: torch.nn.Module, body_params: list[torch.nn.Parameter], cfg: TrainConfig, epoch: int) -> None:
    """Training mode for `epoch` (from 1): which parameters learn and which batch-norm layers keep their statistics.

    A frozen body (optim.train_head_only, or the first optim.freeze_body_epochs epochs) gets no
    gradients, so no optimiser touches it and backpropagation stops at the head. With
    optim.freeze_bn_stats the body's batch-norm layers stay in eval mode: they normalise with their
    running statistics and do not update them. Either way the head and everything else train.
    """
    frozen = cfg.optim.train_head_only or epoch <= cfg.optim.freeze_body_epochs
    for p in body_params:
        p.requires_grad_(not frozen)
    model.train()
    if cfg.optim.freeze_bn_stats:
        for layer in models.body_batchnorms(model):
            layer.eval()


def check_finetune_options(model: torch.nn.Module, optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> None:
    """Fine-tuning options the model cannot honour fail here, before the first step."""
    o = cfg.optim
    if (o.freeze_body_epochs or o.train_head_only) and len(optimizer.param_groups) < 2:
        key = "optim.train_head_only" if o.train_head_only else "optim.freeze_body_epochs"
        raise ConfigError(f"{key} needs a model with a separate head; {cfg.model.name} has none")
    if o.freeze_bn_stats and not models.body_batchnorms(model):
        raise ConfigError(
            f"optim.freeze_bn_stats needs batch-norm layers, and {cfg.model.name} with options "
            f"{cfg.model.options or 'at their defaults'} has none; switch it off"
        )


class BatchMaker:
    """Turns a batch of training indices into model input and targets: float, augmented, mixed, normalised."""

    def __init__(self, cfg: TrainConfig, data: TrainingData) -> None:
        self.data = data
        self.num_classes = data.bundle.num_classes
        self.channels_last = cfg.run.channels_last
        self.pipeline = Pipeline.from_list(list(cfg.augment.train))
        self.mixer = mixing.BatchMixer.from_config(cfg.tricks)  # every mixer switched on, one per mixed batch
        # What ops read from the data: Random Erasing's "mean" fill is the training images' mean colour.
        self.augment_context = {"mean": tuple(data.bundle.mean)}
        self.augment_generator = generator(cfg.run.seed, "augment")
        self.mix_generator = generator(cfg.run.seed, "mix")

    def __call__(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (model input, loss targets, dominant labels, the [0, 1] images before normalising)."""
        x = self.data.train_x[idx].float().div_(255)
        y = self.data.train_y[idx]
        if self.pipeline.active:
            size = x.shape[-2:]
            x, _ = self.pipeline.apply(x, self.augment_generator, self.augment_context)
            if x.shape[-2:] != size:
                raise ConfigError(
                    f"the augmentation pipeline turns {tuple(size)} images into {tuple(x.shape[-2:])}; "
                    "the model and the test split expect the dataset's size, so set crop sizes to it"
                )
        targets, labels = y, y
        mixed = self.mixer(x, y, self.num_classes, self.mix_generator)
        if mixed is not None:
            x, targets, _ = mixed
            labels = targets.argmax(dim=1)
        model_input = self.data.normalise(x)
        if self.channels_last:
            model_input = model_input.contiguous(memory_format=torch.channels_last)
        return model_input, targets, labels, x


def load_teacher(
    run_id: str, bundle: datasets.DatasetBundle, device: torch.device, pixel_order: torch.Tensor | None = None
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The teacher's logits for [0, 1] student images, normalised and sized the way it was trained.

    The student's images arrive permuted when its data.permute_pixels is on; they are put back in
    order first, and the teacher then applies whatever permutation it was trained with itself.
    """
    loaded = load_run_model(run_id, device)
    if loaded.num_classes != bundle.num_classes or loaded.in_channels != bundle.in_channels:
        raise ConfigError(
            f"teacher run {run_id} predicts {loaded.num_classes} classes from {loaded.in_channels}-channel images, "
            f"but this dataset has {bundle.num_classes} classes and {bundle.in_channels} channels"
        )
    if pixel_order is None:
        return loaded.logits
    return lambda images: loaded.logits(unpermute_pixels(images, pixel_order))


def evaluate(model: torch.nn.Module, data: TrainingData, amp: torch.dtype | None, channels_last: bool):
    """Mean loss, accuracy, and per-image predictions and confidences on the test split."""
    model.eval()
    total_loss, predictions, confidences = 0.0, [], []
    with torch.no_grad(), autocast(data.test_x.device, amp):
        for start in range(0, len(data.test_y), EVAL_BATCH):
            x = data.normalise(data.test_x[start : start + EVAL_BATCH].float().div_(255))
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


def train_events(
    cfg: TrainConfig,
    *,
    run_id: str | None = None,
    should_stop: Callable[[], bool] | None = None,
    artefact_dir: Path | None = None,
) -> Iterator[Event]:
    """Train according to `cfg`, yielding events; weights go to `artefact_dir` when given."""
    should_stop = should_stop or (lambda: False)
    start_time = time.perf_counter()
    step = 0
    previous_threads = torch.get_num_threads()
    try:
        # ---- device ---------------------------------------------------------------------
        device = pick_device(cfg.run.device)
        threads = cfg.run.threads or available_cores()
        torch.set_num_threads(threads)
        amp = autocast_dtype(cfg.run.amp, device)
        # Loss scaling keeps small fp16 gradients from flushing to zero; bf16 does not need it.
        scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
        if cfg.model.init_from_run:
            init_source(cfg.model.init_from_run, cfg.model.name)  # a missing source fails before the data loads

        # ---- data -----------------------------------------------------------------------
        data = load_data(cfg, device)
        bundle = data.bundle
        make_batch = BatchMaker(cfg, data)
        n_train, batch_size = len(bundle.train_y), cfg.run.batch_size
        # Drop the ragged last batch (a batch of one breaks batch norm), unless the whole
        # training set is smaller than one batch.
        steps_per_epoch = max(1, n_train // batch_size)
        total_steps = steps_per_epoch * cfg.run.epochs
        shuffle_generator = generator(cfg.run.seed, "shuffle")

        # ---- model ----------------------------------------------------------------------
        model = build_model(cfg, bundle, device)
        forward = torch.compile(model) if cfg.run.compile else model
        teacher = (
            load_teacher(cfg.tricks.teacher_run_id, bundle, device, data.pixel_order) if cfg.tricks.teacher_run_id else None
        )

        # ---- optimiser ------------------------------------------------------------------
        optimizer = build_optimizer(model, cfg)
        body_params = [p for g in optimizer.param_groups if g["name"] == "body" for p in g["params"]]
        check_finetune_options(model, optimizer, cfg)

        yield Started(
            run_id=run_id,
            config=cfg.to_dict(),
            device=describe_device(device, threads, amp, cfg.run.amp),
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

        # ---- loop -----------------------------------------------------------------------
        last_step_end = time.perf_counter()
        for epoch in range(1, cfg.run.epochs + 1):
            # Freeze/unfreeze and frozen batch-norm statistics; also undoes evaluate's model.train().
            apply_freezing(model, body_params, cfg, epoch)

            order = torch.randperm(n_train, generator=shuffle_generator).to(device)
            epoch_loss = epoch_correct = epoch_seen = 0.0
            for b in range(steps_per_epoch):
                if should_stop():
                    weights = save_weights(model, artefact_dir)
                    yield Stopped(step=step, epoch=step / steps_per_epoch, wall=_since(start_time), weights_path=weights)
                    return

                lr = lr_at(step, total_steps, cfg, steps_per_epoch=steps_per_epoch)
                for group in optimizer.param_groups:
                    group["lr"] = lr * group["lr_mult"]

                x, targets, labels, images = make_batch(order[b * batch_size : (b + 1) * batch_size])
                with autocast(device, amp):
                    logits = forward(x)
                    if teacher is not None:
                        with torch.no_grad():
                            teacher_logits = teacher(images)
                        loss = distillation_loss(
                            logits, teacher_logits, targets, cfg.tricks.distill_temperature,
                            cfg.tricks.distill_alpha, cfg.tricks.label_smoothing,
                        )
                    else:
                        loss = classification_loss(logits, targets, cfg.tricks.label_smoothing)

                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                step += 1

                loss_value = loss.item()
                if not math.isfinite(loss_value):
                    kind = "NaN" if math.isnan(loss_value) else "infinite"
                    yield Failed(
                        f"loss became {kind} at step {step}: the learning rate {lr:g} is probably too high",
                        step=step,
                    )
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
                last_step_end = time.perf_counter()

            # ---- eval -------------------------------------------------------------------
            if epoch % cfg.run.eval_every == 0 or epoch == cfg.run.epochs:
                test_loss, test_acc, predicted, confidence = evaluate(forward, data, amp, cfg.run.channels_last)
                train_loss, train_acc = epoch_loss / epoch_seen, epoch_correct / epoch_seen
                yield Eval(
                    epoch=epoch, step=step, train_loss=train_loss, train_acc=train_acc,
                    test_loss=test_loss, test_acc=test_acc, wall=_since(start_time),
                )
                # Evaluation time is not training time: do not charge it to the next step.
                last_step_end = time.perf_counter()

        # ---- artefacts ------------------------------------------------------------------
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
