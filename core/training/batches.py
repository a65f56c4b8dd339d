"""The training data on the device, and how a batch of indices becomes model input.

The whole dataset sits on the device as uint8; each batch is converted to float, augmented
(every image draws its own parameters), possibly mixed, then normalised.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from core import data as datasets
from core.augment import Pipeline, as_unit_float, mixing
from core.data.permute import permute_pixels, pixel_permutation
from core.i18n import _, tr
from core.training import models
from core.training.config import ConfigError, TrainConfig
from core.training.events import BatchSample
from core.training.seeds import generator


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


def steps_per_epoch(train_images: int, batch_size: int) -> int:
    """Full batches per epoch: the ragged last batch is dropped (a batch of one breaks batch norm),
    unless the whole training set is smaller than one batch."""
    return max(1, train_images // batch_size)


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
        notes.append(_("resized to {size} px, the pretrained {model}'s input size (data.image_size sets another)").format(
            size=size, model=cfg.model.name,
        ))
    # Input normalisation follows the model: a pretrained one expects its pretraining data's
    # statistics, whatever the new dataset's are. The run records them, so predictions match.
    stats = models.input_normalisation(cfg.model.name, cfg.model.options, bundle.in_channels)
    if stats is not None:
        notes.append(_("normalised with ImageNet's mean and std, as the pretrained weights expect"))
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
            note="; ".join(filter(None, [bundle.note, _("pixels permuted (data seed {seed})").format(seed=d.seed)])),
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

    def __call__(self, idx: torch.Tensor, keep: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (model input, loss targets, dominant labels, the [0, 1] images before normalising).

        keep: also keep the batch's first `keep` images with their targets and draws, for
        `sample` (what the Train page shows of a run's batches); 0, the usual case, keeps nothing."""
        x = self.data.train_x[idx]  # uint8: the pipeline's leading flips and crops run on the bytes
        y = self.data.train_y[idx]
        records: list[dict] = []
        if not self.pipeline.active:
            x = as_unit_float(x)
        else:
            size = x.shape[-2:]
            x, records = self.pipeline.apply(x, self.augment_generator, self.augment_context)
            if x.shape[-2:] != size:
                raise ConfigError(
                    _(
                        "the augmentation pipeline turns {size} images into {new_size}; the model and the "
                        "test split expect the dataset's size, so set crop sizes to it"
                    ).format(
                        size=tuple(size),
                        new_size=tuple(x.shape[-2:]),
                    )
                )
        targets, labels = y, y
        mixed = self.mixer(x, y, self.num_classes, self.mix_generator)
        mix_info = None
        if mixed is not None:
            x, targets, mix_info = mixed
            labels = targets.argmax(dim=1)
        if keep:
            self._kept = (x[:keep].detach().cpu(), mixing.soft_labels(targets[:keep], self.num_classes).detach().cpu(),
                          y.cpu(), records, self.mixer.last, mix_info)
        model_input = self.data.normalise(x)
        if self.channels_last:
            model_input = model_input.contiguous(memory_format=torch.channels_last)
        return model_input, targets, labels, x

    _kept: tuple | None = None

    def sample(self, step: int, epoch: float, label_smoothing: float = 0.0) -> BatchSample | None:
        """The images the last `keep` call kept, as an event: uint8 pixels, each image's target
        (label smoothing applied as the loss applies it) and what it drew, in words."""
        if self._kept is None:
            return None
        images, soft, y, records, mixer, mix_info = self._kept
        self._kept = None
        if label_smoothing:
            soft = soft * (1 - label_smoothing) + label_smoothing / self.num_classes
        classes = self.data.bundle.classes
        names = [classes[int(c)] for c in y]  # the batch's images by their classes: "70% of cat + 30% of dog"
        targets, drawn = [], []
        for i in range(len(images)):
            weights, order = soft[i].sort(descending=True)
            targets.append([(int(c), round(float(w), 4)) for c, w in zip(order[:SAMPLE_CLASSES], weights[:SAMPLE_CLASSES])
                            if w >= 0.005])
            lines = Pipeline.describe(records, i) if records else []
            if mixer is not None:
                lines.append(f"{tr(mixer.label)}: {mixer.describe(mix_info, i, names)}")
            drawn.append(lines)
        pixels = (images.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        return BatchSample(step=step, epoch=epoch, images=pixels, targets=targets, drawn=drawn)


SAMPLE_CLASSES = 3  # target classes shown per image of a BatchSample
