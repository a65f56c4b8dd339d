"""Datasets: every source ends up as one in-memory `DatasetBundle` of uint8 tensors.

Sources, by name:
  "shapes"          generated from the seed, no files; the default and the one tests use
  "digits"          scikit-learn's 1,797 real 8x8 handwritten digits, shipped inside the package
  "cifar10", "mnist", "fashion_mnist"
                    torchvision's dataset classes under home()/datasets
  "folder:<path>"   your own images in class folders (ImageFolder layout)
  "zip:<path>"      the same inside a zip, read member by member and never extracted

Everything is uint8 [N, C, H, W] so that 60,000 CIFAR images take 184 MB rather than 737 MB;
the trainer converts batches to float on the device. Loading is deterministic: the same
arguments give identical tensors, because every random choice (shape parameters, the held-out
split of an unsplit folder, subsets) comes from a generator seeded by `seed` and a fixed tag.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.data.bundle import DatasetBundle, DatasetError, channel_stats, percent, seeded_generator, stratified_pick
from core.data.catalogue import DATASETS, IMAGE_SIZE_RANGE
from core.data.embedded import load_shapes, load_sklearn_digits
from core.data.folders import DEFAULT_MAX_BYTES, DEFAULT_MAX_FILES, load_images
from core.data.torchvision_sets import TORCHVISION_SETS, datasets_root, load_torchvision, torchvision_files_present
from core.i18n import _

# A test split is subset along with train only above this size: a smaller one is cheap to
# evaluate in full, and a full test split keeps accuracies comparable across subset sizes.
FULL_TEST_LIMIT = 10_000


def available_datasets(allow_download: bool = False) -> list[str]:
    """Built-in names usable right now: shapes always, digits with scikit-learn installed,
    torchvision ones when their files exist."""
    import importlib.util

    root = datasets_root()
    return [
        name
        for name, info in DATASETS.items()
        if (not info.needs_files or allow_download or torchvision_files_present(name, root))
        and (info.package is None or importlib.util.find_spec(info.package) is not None)
    ]




def load_dataset(
    name: str,
    *,
    image_size: int | None = None,
    subset: float | None = None,
    seed: int = 0,
    val_ratio: float = 0.2,
    variant: str | None = None,
    allow_download: bool = False,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_files: int = DEFAULT_MAX_FILES,
) -> DatasetBundle:
    """Load a dataset by name into memory; see the module docstring for the names.

    image_size: side of the square images, 8..256. None keeps the source size for the built-in
        sets; for your own images it picks the source size if <= 32 px, 32 if <= 64 px, else 64.
    subset: a stratified, seeded fraction (0, 1] of the train split (also of the test split when
        that holds more than 10,000 images).
    val_ratio: fraction of each class held out as the test split when your own images have no
        train/test folders.
    variant: only for "shapes": None, "left" or "few_colours" (see DATASETS["shapes"].help).
    max_bytes, max_files: limits for your own images (zip bombs, wrong folder picked).
    """
    if not isinstance(name, str) or not name.strip():
        raise DatasetError(_("dataset name must be a non-empty string"))
    name = name.strip()
    if image_size is not None:
        lo, hi = IMAGE_SIZE_RANGE
        if isinstance(image_size, bool) or not isinstance(image_size, int) or not lo <= image_size <= hi:
            raise DatasetError(
                _("image_size must be a whole number from {lo} to {hi}, got {image_size!r}").format(
                    lo=lo, hi=hi, image_size=image_size
                )
            )
    if subset is not None and (isinstance(subset, bool) or not isinstance(subset, (int, float)) or not 0 < subset <= 1):
        raise DatasetError(_("subset must be a fraction in (0, 1], got {subset!r}").format(subset=subset))
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise DatasetError(_("seed must be a whole number, got {seed!r}").format(seed=seed))
    if not isinstance(val_ratio, (int, float)) or not 0 < val_ratio < 1:
        raise DatasetError(
            _("val_ratio must be a fraction strictly between 0 and 1, got {val_ratio!r}").format(val_ratio=val_ratio)
        )
    if variant is not None and name != "shapes":
        raise DatasetError(_("variant applies only to the 'shapes' dataset, not to {name!r}").format(name=name))

    notes: list[str] = []
    if name == "shapes":
        train_x, train_y, test_x, test_y, classes = load_shapes(image_size or 32, seed, variant, notes)
    elif name == "digits":
        train_x, train_y, test_x, test_y, classes = load_sklearn_digits(image_size, seed, notes)
    elif name in TORCHVISION_SETS:
        train_x, train_y, test_x, test_y, classes = load_torchvision(name, image_size, allow_download, notes)
    elif name.startswith(("folder:", "zip:")):
        kind, unused, path = name.partition(":")
        train_x, train_y, test_x, test_y, classes = load_images(
            kind, path, image_size, seed, val_ratio, max_bytes, max_files, notes
        )
    else:
        known = ", ".join(repr(n) for n in DATASETS)
        raise DatasetError(
            _("unknown dataset {name!r}; choose one of {known}, or 'folder:<path>' or 'zip:<path>'").format(
                name=name, known=known
            )
        )

    if subset is not None and subset < 1:
        keep = stratified_pick(train_y, subset, seeded_generator(seed, "subset-train"))
        train_x, train_y = train_x[keep], train_y[keep]
        notes.append(_("subset: {percent} of train, stratified (seed {seed})").format(percent=percent(subset), seed=seed))
        if len(test_y) > FULL_TEST_LIMIT:
            keep = stratified_pick(test_y, subset, seeded_generator(seed, "subset-test"))
            test_x, test_y = test_x[keep], test_y[keep]
            notes.append(
                _("subset: {percent} of test (it holds more than {limit:,} images)").format(
                    percent=percent(subset), limit=FULL_TEST_LIMIT
                )
            )

    mean, std = channel_stats(train_x)
    return DatasetBundle(
        name=name,
        train_x=train_x.contiguous(),
        train_y=train_y,
        test_x=test_x.contiguous(),
        test_y=test_y,
        classes=tuple(classes),
        mean=mean,
        std=std,
        note="; ".join(notes),
    )


def load_for_config(data: Mapping[str, Any], allow_download: bool | None = None) -> DatasetBundle:
    """The dataset a config's data section describes (a DataConfig as a dict, as a run stores it),
    loaded as that run loaded it; allow_download, when given, replaces the section's own."""
    return load_dataset(
        data["dataset"], image_size=data["image_size"], subset=data["subset"], seed=data["seed"],
        val_ratio=data["val_ratio"], variant=data["variant"],
        allow_download=data["allow_download"] if allow_download is None else allow_download,
    )
