"""The model a run trains: built and initialised from its config, or started from another run's
weights (fine-tuning, freezing, frozen batch-norm statistics), and a teacher for distillation."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from core import data as datasets
from core.data.permute import unpermute_pixels
from core.i18n import _
from core.runs import store
from core.runs.predict import load_run_model
from core.training import models
from core.training.config import ConfigError, TrainConfig
from core.training.seeds import derived_seed


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
        raise ConfigError(_("model.init_from_run: there is no run {run_id!r} in the store ({db_path})").format(
            run_id=run_id,
            db_path=store.where(),
        )) from None
    if record.status != "finished":
        raise ConfigError(
            _(
                "model.init_from_run: run {run_id} ({name}) is {status}; only a finished run's "
                "weights can start another run"
            ).format(
                run_id=run_id,
                name=record.name,
                status=record.status,
            )
        )
    trained = record.config["model"]["name"]
    if trained != model_name:
        raise ConfigError(
            _(
                "model.init_from_run: run {run_id} ({name}) trained a {trained}, not a "
                "{model_name}; set model.name to {trained} to start from its weights"
            ).format(
                run_id=run_id,
                name=record.name,
                trained=trained,
                model_name=model_name,
            )
        )
    weights = record.folder / (record.summary.get("weights") or "weights.pt")
    if not weights.exists():
        raise ConfigError(_("model.init_from_run: run {run_id} ({name}) has no saved weights ({weights})").format(
            run_id=run_id,
            name=record.name,
            weights=weights,
        ))
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
            data = record.summary.get("data", {})
            side = data.get("image_size")
            message = _(
                "model.init_from_run: run {run_id} ({name}) has another architecture: its {key} has no such "
                "weight, this run's has shape {shape}. That run trained {model} with options {their_options} on "
                "{their_channels}-channel {side}x{side} images; this one has options {options} and "
                "{in_channels}-channel {image_size}x{image_size} images"
            ) if key not in stored else _(
                "model.init_from_run: run {run_id} ({name}) has another architecture: its {key} has shape "
                "{their_shape}, this run's has shape {shape}. That run trained {model} with options "
                "{their_options} on {their_channels}-channel {side}x{side} images; this one has options "
                "{options} and {in_channels}-channel {image_size}x{image_size} images"
            )
            raise ConfigError(message.format(
                run_id=run_id,
                name=record.name,
                key=key,
                their_shape=tuple(stored[key].shape) if key in stored else "",
                shape=tuple(value.shape),
                model=cfg.model.name,
                their_options=_options_text(record.config["model"]["options"]),
                their_channels=data.get("in_channels"),
                side=side,
                options=_options_text(cfg.model.options),
                in_channels=bundle.in_channels,
                image_size=bundle.image_size,
            ))
    model.load_state_dict({k: stored[k] for k in body}, strict=False)


def _options_text(options: dict) -> str:
    """A model's options as an error message shows them."""
    return str(options) if options else _("at their defaults")


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
    if (o.freeze_body_epochs or o.train_head_only) and {g["name"] for g in optimizer.param_groups} != {"body", "head"}:
        key = "optim.train_head_only" if o.train_head_only else "optim.freeze_body_epochs"
        raise ConfigError(_("{key} needs a model with a separate head; {model} has none").format(key=key, model=cfg.model.name))
    if o.freeze_bn_stats and not models.body_batchnorms(model):
        raise ConfigError(
            _(
                "optim.freeze_bn_stats needs batch-norm layers, and {model} with options {options} "
                "has none; switch it off"
            ).format(
                model=cfg.model.name,
                options=_options_text(cfg.model.options),
            )
        )




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
            _(
                "teacher run {run_id} predicts {num_classes} classes from {in_channels}-channel "
                "images, but this dataset has {dataset_classes} classes and {dataset_channels} channels"
            ).format(
                run_id=run_id,
                num_classes=loaded.num_classes,
                in_channels=loaded.in_channels,
                dataset_classes=bundle.num_classes,
                dataset_channels=bundle.in_channels,
            )
        )
    if pixel_order is None:
        return loaded.logits
    return lambda images: loaded.logits(unpermute_pixels(images, pixel_order))
