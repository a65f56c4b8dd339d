"""CIFAR-10, MNIST and Fashion-MNIST through torchvision's dataset classes, from files under
home()/datasets (downloaded there only when a run allows it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from core.data.bundle import DatasetError, resize_uint8
from core.data.catalogue import DATASETS
from core.i18n import N_, _, tr
from core.paths import home

_MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
# name -> (torchvision class name, folder under the root, files that folder must hold, how to get them there)
TORCHVISION_SETS = {
    "cifar10": (
        "CIFAR10",
        "cifar-10-batches-py",
        ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"),
        N_("unpacking cifar-10-python.tar.gz in {root} creates it"),
    ),
    "mnist": ("MNIST", "MNIST/raw", _MNIST_FILES, N_("gunzip the four .gz files of MNIST there")),
    "fashion_mnist": (
        "FashionMNIST", "FashionMNIST/raw", _MNIST_FILES, N_("gunzip the four .gz files of Fashion-MNIST there")
    ),
}


def datasets_root() -> Path:
    """The folder torchvision's datasets live in: home()/datasets."""
    return home() / "datasets"


def torchvision_folder(name: str, root: Path | None = None) -> Path:
    """Where torchvision's files of a built-in set belong: <root, default home()/datasets>/<its folder>."""
    return (datasets_root() if root is None else root) / TORCHVISION_SETS[name][1]


def torchvision_files(name: str) -> tuple[str, ...]:
    """The files torchvision_folder(name) must hold for the set to load."""
    return TORCHVISION_SETS[name][2]


def has_torchvision_files(name: str) -> bool:
    return torchvision_files_present(name, datasets_root())


def torchvision_dataset_class(name: str):
    """torchvision's dataset class for a built-in set (torchvision.datasets.CIFAR10, ...)."""
    import torchvision.datasets  # here, not at the top: importing it takes about a second

    return getattr(torchvision.datasets, TORCHVISION_SETS[name][0])


def torchvision_files_present(name: str, root: Path) -> bool:
    folder, files = TORCHVISION_SETS[name][1:3]
    return all((root / folder / f).is_file() for f in files)


def load_torchvision(name: str, image_size: int | None, allow_download: bool, notes: list[str]):
    cls_name, folder, files, how = TORCHVISION_SETS[name]
    root = datasets_root()
    if not allow_download and not torchvision_files_present(name, root):
        raise DatasetError(
            _(
                "{label}: files not found and downloading is off. Put the files {files} in {folder} "
                "(torchvision's layout: {how}), download them (python -m core.data.sources download {name}, "
                "or the Train page's Data tab), or upload a zip of class folders instead (zip:<path>)."
            ).format(
                label=tr(DATASETS[name].label),
                files=", ".join(files),
                folder=root / folder,
                how=tr(how).format(root=root),
                name=name,
            )
        )
    import torchvision.datasets  # here, not at the top: importing it takes about a second

    cls = getattr(torchvision.datasets, cls_name)
    try:
        train = cls(root=str(root), train=True, download=allow_download)
        test = cls(root=str(root), train=False, download=allow_download)
    except Exception as exc:  # torchvision raises RuntimeError, URLError, OSError... all mean the same here
        raise DatasetError(
            _(
                "{label} could not be loaded from {folder}: {error}. Check the files there ({files}) "
                "or upload a zip of class folders instead."
            ).format(label=tr(DATASETS[name].label), folder=root / folder, error=exc, files=", ".join(files))
        ) from exc

    def tensors(ds) -> tuple[torch.Tensor, torch.Tensor]:
        data = torch.as_tensor(np.asarray(ds.data))
        x = data.unsqueeze(1) if data.ndim == 3 else data.permute(0, 3, 1, 2)  # MNIST [N,H,W]; CIFAR [N,H,W,C]
        return x.to(torch.uint8).contiguous(), torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)

    train_x, train_y = tensors(train)
    test_x, test_y = tensors(test)
    if image_size is not None and image_size != train_x.shape[-1]:
        notes.append(
            _("resized from {source}x{source} to {size}x{size}").format(source=train_x.shape[-1], size=image_size)
        )
        train_x, test_x = resize_uint8(train_x, image_size), resize_uint8(test_x, image_size)
    return train_x, train_y, test_x, test_y, tuple(train.classes)
