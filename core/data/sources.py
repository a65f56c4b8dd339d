"""Where each kind of real dataset comes from on this machine, and getting the missing ones.

The presets are written for real data: CIFAR-10, MNIST, Fashion-MNIST, a few classes of photos.
`resolve(kind)` finds the best copy here, in this order:

  1. torchvision's files under home()/datasets (downloaded by `download`, or put there by hand);
  2. a zip or folder of class folders registered as that kind: recognised by its class names
     when it was uploaded or pointed to (CIFAR-10's airplane ... truck), or chosen once by the
     user ("use this dataset as CIFAR-10"), and remembered in the run store's settings;
  3. the embedded set, if the kind has one (MNIST: scikit-learn's 1,797 real 8x8 digits);

and returns None when there is none (a preset then falls back to the generated shapes).

    resolve("cifar10")   # Resolved(kind="cifar10", dataset="zip:/.../uploads/3f2a....zip", source="your upload cifar10.zip")
    download("cifar10", progress=lambda done, total: ...)   # torchvision's archive, md5-checked

Downloads use torchvision's own URLs and checksums (read from its dataset classes) and unpack into
torchvision's layout, so core.data loads them like files put there by hand. Offline, or on any
HTTP error, they raise core.data.DatasetError saying what to do instead. $AUGLAB_DOWNLOAD_BASE
points them at a mirror: <base>/<kind>/<torchvision's file name>, e.g.
<base>/cifar10/cifar-10-python.tar.gz or <base>/mnist/train-images-idx3-ubyte.gz.

This module is UI-free: the Train page (pages/ui/dataset_picker.py) and `python -m core.data.sources` use it.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import http.client
import json
import math
import os
import re
import shutil
import sys
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from core import data
from core.data import DIGIT_CLASSES, DatasetError
from core.data.uploads import find_upload
from core.i18n import N_, _, tr
from core.runs import store

# ============================================================================
# Kinds
# ============================================================================


@dataclass(frozen=True)
class Kind:
    key: str
    label: str  # marked with N_: shown as tr(label)
    classes: tuple[str, ...] | None  # the class names, in the set's own order; None: any classes
    image_size: int | None  # the set's side in pixels; None: any
    torchvision: str | None  # the core.data name of torchvision's copy, if there is one
    embedded: str | None  # the core.data name of a stand-in shipped with the app, if there is one
    how_to_get: str  # for a person who does not have it yet; marked with N_: shown as tr(how_to_get)


CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
# torchvision's FashionMNIST.classes
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

KINDS: dict[str, Kind] = {
    "cifar10": Kind(
        key="cifar10",
        label=N_("CIFAR-10"),
        classes=CIFAR10_CLASSES,
        image_size=32,
        torchvision="cifar10",
        embedded=None,
        how_to_get=N_(
            "Download torchvision's archive (about 170 MB), put torchvision's files (the folder "
            "cifar-10-batches-py) in the data folder's datasets/ folder, or upload a zip of class folders "
            "airplane, automobile, ..., truck (such as cifar10.zip: cifar10/train/<class>/*.jpg and "
            "cifar10/test/<class>/*.jpg), which is recognised as CIFAR-10 by its class names."
        ),
    ),
    "mnist": Kind(
        key="mnist",
        label=N_("MNIST (handwritten digits)"),
        classes=DIGIT_CLASSES,
        image_size=28,
        torchvision="mnist",
        embedded="digits",
        how_to_get=N_(
            "Download torchvision's four files (about 12 MB), put them (un-gzipped) in the data folder's "
            "datasets/MNIST/raw/, or upload a zip of class folders 0 ... 9 and choose 'use this dataset as "
            "MNIST'. Without them, scikit-learn's 1,797 real 8x8 handwritten digits stand in."
        ),
    ),
    "fashion_mnist": Kind(
        key="fashion_mnist",
        label=N_("Fashion-MNIST"),
        classes=FASHION_CLASSES,
        image_size=28,
        torchvision="fashion_mnist",
        embedded=None,
        how_to_get=N_(
            "Download torchvision's four files (about 30 MB), put them (un-gzipped) in the data folder's "
            "datasets/FashionMNIST/raw/, or upload a zip of class folders (such as fashion-mnist.zip, "
            "folders 0 ... 9) and choose 'use this dataset as Fashion-MNIST'."
        ),
    ),
    "photos": Kind(
        key="photos",
        label=N_("Photos (a few classes)"),
        classes=None,
        image_size=None,
        torchvision=None,
        embedded=None,
        how_to_get=N_(
            "Upload a zip of class folders of photos (such as flowers5.zip: daisy, dandelion, rose, sunflower, "
            "tulip) and choose 'use this dataset as photos'. Larger photos are resized for training."
        ),
    ),
}

# What an embedded set is called where its source is shown.
EMBEDDED_SOURCES = {"digits": N_("embedded scikit-learn digits")}  # shown as tr(...)


def kind(key: str) -> Kind:
    try:
        return KINDS[key]
    except KeyError:
        raise DatasetError(
            _("unknown kind of dataset {key!r}; choose one of {kinds}").format(key=key, kinds=", ".join(KINDS))
        ) from None


# ============================================================================
# Recognising a dataset by its class names
# ============================================================================

# Normalised class names that identify a kind on their own. Bare "0" ... "9" are not here: the
# shared fashion-mnist.zip uses those folder names too, so they do not tell MNIST from Fashion-MNIST.
_SYNONYMS = {"plane": "airplane", "aeroplane": "airplane", "car": "automobile", "tshirt": "tshirttop"}
_NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def _normalise(name: str) -> str:
    """ "0 - zero" -> "zero", "Ankle boot" -> "ankleboot", "T-shirt_top" -> "tshirttop", "3" -> "3"."""
    text = re.sub(r"^\d+\s*[-_.:)]*\s*(?=[a-zA-Z])", "", name.strip()).lower()  # an index in front
    text = re.sub(r"[^a-z0-9]", "", text)
    return _SYNONYMS.get(text, text)


_RECOGNISED: dict[str, frozenset[str]] = {
    "cifar10": frozenset(_normalise(c) for c in CIFAR10_CLASSES),
    "mnist": frozenset(_NUMBER_WORDS),  # torchvision's MNIST.classes: "0 - zero", ...
    "fashion_mnist": frozenset(_normalise(c) for c in FASHION_CLASSES),
}


def recognise(classes: Sequence[str], image_size: int) -> str | None:
    """The kind a set of class folders unambiguously is, or None.

    The class names must be exactly the kind's (case, order, separators and a leading index
    ignored: "Airplane", "0_airplane", "plane" and "car" all count), and the images within a
    factor of two of the kind's size: photos of airplanes ... trucks at 256 px are a dataset of
    their own, not CIFAR-10. Digit-named folders "0" ... "9" are MNIST as often as they are
    Fashion-MNIST (fashion-mnist.zip uses them), so they are not recognised: choose the kind.
    """
    names = frozenset(_normalise(c) for c in classes)
    if len(names) != len(classes):
        return None
    for key, expected in _RECOGNISED.items():
        size = KINDS[key].image_size
        if names == expected and (size is None or size / 2 <= image_size <= size * 2):
            return key
    return None


# ============================================================================
# The registry: which zip or folder is which kind, kept in the run store's settings
# ============================================================================

_REGISTRY_KEY = "sources.registered"  # JSON {kind: [dataset, newest first]}


def _read_registry() -> dict[str, list[str]]:
    try:
        stored = json.loads(store.get_setting(_REGISTRY_KEY) or "{}")
    except ValueError:
        return {}
    if not isinstance(stored, dict):
        return {}
    return {k: [d for d in v if isinstance(d, str)] for k, v in stored.items() if k in KINDS and isinstance(v, list)}


def _write_registry(registry: Mapping[str, list[str]]) -> None:
    store.set_setting(_REGISTRY_KEY, json.dumps({k: v for k, v in registry.items() if v}))


def _canonical(dataset: str) -> str:
    """ "zip:~/x/../cifar10.zip" -> "zip:/home/me/cifar10.zip": one spelling per file."""
    prefix, sep, path = dataset.partition(":")
    if not sep or prefix not in ("zip", "folder") or not path.strip():
        raise DatasetError(
            _("only a 'zip:<path>' or 'folder:<path>' dataset can be registered as a kind, not {dataset!r}").format(
                dataset=dataset
            )
        )
    return f"{prefix}:{Path(path.strip()).expanduser().resolve()}"


def register(kind_key: str, dataset: str) -> None:
    """Remember that this zip:/folder: dataset is that kind (it stops being any other kind)."""
    kind(kind_key)
    dataset = _canonical(dataset)
    registry = _read_registry()
    for datasets in registry.values():
        if dataset in datasets:
            datasets.remove(dataset)
    registry[kind_key] = [dataset, *registry.get(kind_key, [])]
    _write_registry(registry)


def unregister(kind_key: str, dataset: str) -> None:
    """Forget that the dataset is that kind; nothing happens if it was not."""
    kind(kind_key)
    dataset = _canonical(dataset)
    registry = _read_registry()
    if dataset in registry.get(kind_key, []):
        registry[kind_key].remove(dataset)
        _write_registry(registry)


def registered(kind_key: str) -> list[str]:
    """The datasets registered as that kind, newest first (files since deleted included)."""
    kind(kind_key)
    return list(_read_registry().get(kind_key, []))


def registered_kind(dataset: str) -> str | None:
    """The kind a zip:/folder: dataset is registered as, if any."""
    try:
        dataset = _canonical(dataset)
    except DatasetError:
        return None
    return next((k for k, datasets in _read_registry().items() if dataset in datasets), None)


def dataset_present(dataset: str) -> bool:
    """Whether the file or folder of a zip:/folder: dataset is (still) there."""
    prefix, unused, path = dataset.partition(":")
    return Path(path).is_file() if prefix == "zip" else Path(path).is_dir()


@dataclass(frozen=True)
class Pointed:
    dataset: str  # the DataConfig.dataset value: "zip:/abs/path.zip" or "folder:/abs/path"
    overview: data.ImagesOverview
    kind: str | None  # the kind it was recognised (and registered) as


def point_to(path: str) -> Pointed:
    """Use a zip or folder of class folders on this machine: read its layout (no decoding), and
    register it when its class names say which kind it is. `path` is a path or a zip:/folder: value."""
    text = path.strip()
    if not text.startswith(("zip:", "folder:")):
        local = Path(text).expanduser()
        text = f"{'folder' if local.is_dir() else 'zip'}:{text}"
    dataset = _canonical(text)
    overview = data.describe_images(dataset)
    found = recognise(overview.classes, overview.typical_size)
    if found is not None:
        register(found, dataset)
    return Pointed(dataset, overview, found)


# ============================================================================
# Resolving a kind to a dataset on this machine
# ============================================================================


@dataclass(frozen=True)
class Resolved:
    kind: str
    dataset: str  # a DataConfig.dataset value: "cifar10", "zip:/...", "digits"
    source: str  # for people, in the current language: "torchvision files", "your upload cifar10.zip", ...


def describe_source(dataset: str) -> str:
    """Where a dataset value comes from, in words."""
    if dataset in data.DATASETS:
        if dataset in EMBEDDED_SOURCES:
            return tr(EMBEDDED_SOURCES[dataset])
        if data.DATASETS[dataset].needs_files:
            return _("torchvision files")
        return _("embedded {dataset}").format(dataset=dataset)
    upload = find_upload(dataset)
    if upload is not None:
        return _("your upload {name}").format(name=upload.name)
    prefix, unused, path = dataset.partition(":")
    if prefix == "zip":
        return _("your zip {name}").format(name=Path(path).name)
    if prefix == "folder":
        return _("your folder {name}").format(name=Path(path).name)
    return _("your {prefix} {name}").format(prefix=prefix, name=Path(path).name)


def resolve(kind_key: str) -> Resolved | None:
    """The best copy of that kind on this machine (see the module docstring for the order), or None."""
    k = kind(kind_key)
    if k.torchvision is not None and data.has_torchvision_files(k.torchvision):
        return Resolved(kind_key, k.torchvision, _("torchvision files"))
    for dataset in registered(kind_key):
        if dataset_present(dataset):
            return Resolved(kind_key, dataset, describe_source(dataset))
    if k.embedded is not None and k.embedded in data.available_datasets():
        return Resolved(kind_key, k.embedded, describe_source(k.embedded))
    return None


def train_size(dataset: str, *, subset: float | None = None, val_ratio: float = 0.2) -> int | None:
    """How many training images a run on this dataset sees, without loading it; None if unknown."""
    n: int | None = None
    if dataset in data.DATASETS:
        n = data.DATASETS[dataset].train_size
    elif (upload := find_upload(dataset)) is not None:
        n = upload.train_size
    elif dataset.startswith(("zip:", "folder:")):
        try:
            overview = data.describe_images(dataset)
        except DatasetError:
            return None
        n = overview.train_files if overview.split else round(overview.train_files * (1 - val_ratio))
    if n is None:
        return None
    return max(1, round(n * subset)) if subset else n


# ============================================================================
# A training budget for the dataset's size
# ============================================================================

# Below this many training images the defaults (2 epochs of 64) give too few steps to learn.
SMALL_DATASET = 2_000
# A from-scratch run needs a few hundred optimiser steps before it beats chance; the default run
# on the shapes takes 156.
MIN_STEPS = 300
MIN_BATCH = 8
# Caps the epochs for a very small set: it stays a short run (a 20-image set: 100 epochs, 2,000 images).
MAX_EPOCHS = 100


def _count(n: int, one: str, many: str) -> str:
    """`one` or `many` (messages with an {n} placeholder) for n things."""
    return (one if n == 1 else many).format(n=n)


def suggest_budget(n_train: int, batch_size: int, epochs: int) -> tuple[int, int, str]:
    """(batch size, epochs, note): a budget that gives a small dataset enough optimiser steps.

    A set of MIN_STEPS or more steps, or of SMALL_DATASET or more images, keeps the budget it has
    (the note is ""). A smaller one gets a batch of about a tenth of the set (a power of two,
    8 at least, never larger than asked) and enough epochs for MIN_STEPS steps (never fewer than
    asked, at most MAX_EPOCHS). Steps are counted as the trainer does: n_train // batch an epoch.
    """
    if n_train < 1 or batch_size < 1 or epochs < 1:
        raise ValueError(
            _("n_train, batch_size and epochs must be positive, got {n_train}, {batch_size}, {epochs}").format(
                n_train=n_train, batch_size=batch_size, epochs=epochs
            )
        )

    def steps(batch: int, eps: int) -> int:
        return max(1, n_train // batch) * eps

    before = steps(batch_size, epochs)
    if n_train >= SMALL_DATASET or before >= MIN_STEPS:
        return batch_size, epochs, ""
    batch = min(batch_size, max(MIN_BATCH, 2 ** int(math.log2(max(1, n_train // 10)))))
    per_epoch = max(1, n_train // batch)
    new_epochs = max(epochs, min(MAX_EPOCHS, math.ceil(MIN_STEPS / per_epoch)))
    after = steps(batch, new_epochs)
    changed = []
    if batch != batch_size:
        changed.append(_("batch size {old} → {new}").format(old=batch_size, new=batch))
    if new_epochs != epochs:
        changed.append(_("epochs {old} → {new}").format(old=epochs, new=new_epochs))
    if not changed:
        return batch_size, epochs, ""
    changes = changed[0] if len(changed) == 1 else _("{first} and {second}").format(first=changed[0], second=changed[1])
    capped = (
        " " + _("(capped at {max_epochs} epochs to keep the run short)").format(max_epochs=MAX_EPOCHS)
        if new_epochs == MAX_EPOCHS and after < MIN_STEPS
        else ""
    )
    note = _(
        "{n_train:,} training images: batch {batch_size} for {epochs} would be only {steps}, too few to learn "
        "beyond chance from scratch. Set {changes}: {per_epoch} an epoch, {after} in all{capped}, still a short "
        "run ({seen:,} images seen)."
    ).format(
        n_train=n_train,
        batch_size=batch_size,
        epochs=_count(epochs, _("{n:,} epoch"), _("{n:,} epochs")),
        steps=_count(before, _("{n:,} optimiser step"), _("{n:,} optimiser steps")),
        changes=changes,
        per_epoch=_count(per_epoch, _("{n:,} step"), _("{n:,} steps")),
        after=after,
        capped=capped,
        seen=n_train * new_epochs,
    )
    return batch, new_epochs, note


# ============================================================================
# Downloading torchvision's files
# ============================================================================

DOWNLOAD_BASE_ENV = "AUGLAB_DOWNLOAD_BASE"
TIMEOUT_S = 30.0  # for connecting and for each read; a stalled download fails instead of hanging
HEAD_TIMEOUT_S = 5.0  # asking for the size happens while a page draws
CHUNK_BYTES = 1 << 18


@dataclass(frozen=True)
class RemoteFile:
    name: str  # torchvision's file name, e.g. "cifar-10-python.tar.gz"
    md5: str  # torchvision's checksum of it
    urls: tuple[str, ...]  # where to fetch it, tried in order (torchvision's mirrors)


def remote_files(kind_key: str, url: str | None = None) -> list[RemoteFile]:
    """torchvision's files for a kind, with their checksums, as its dataset classes declare them.

    url: the folder URL they are in (torchvision's file names are appended), replacing
    torchvision's mirrors; default $AUGLAB_DOWNLOAD_BASE/<kind>/ when that is set.
    """
    k = kind(kind_key)
    if k.torchvision is None:
        raise DatasetError(
            _("{label} has no torchvision download. {how_to_get}").format(label=tr(k.label), how_to_get=tr(k.how_to_get))
        )
    cls = data.torchvision_dataset_class(k.torchvision)
    if hasattr(cls, "tgz_md5"):  # CIFAR10: one archive
        files = [(cls.filename, cls.tgz_md5)]
        bases = [cls.url.rsplit("/", 1)[0]]
    else:  # MNIST, FashionMNIST: four gzipped files on each mirror
        files = list(cls.resources)
        bases = list(cls.mirrors)
    if url is None and os.environ.get(DOWNLOAD_BASE_ENV):
        url = os.environ[DOWNLOAD_BASE_ENV].rstrip("/") + f"/{kind_key}"
    if url is not None:
        bases = [url]
    return [RemoteFile(name, md5, tuple(f"{b.rstrip('/')}/{name}" for b in bases)) for name, md5 in files]


def _what_to_do(k: Kind) -> str:
    return _(
        "To use {label} without downloading, put torchvision's files ({files}) in {folder}, or upload a zip of "
        "class folders on the Train page (Data tab) and choose 'use this dataset as {label}'."
    ).format(
        label=tr(k.label),
        files=", ".join(data.torchvision_files(k.torchvision)),
        folder=data.torchvision_folder(k.torchvision),
    )


def _network_error(k: Kind, url: str, exc: BaseException) -> DatasetError:
    host = urllib.parse.urlsplit(url).netloc or url
    if isinstance(exc, urllib.error.HTTPError):
        why = _("the server {host} answered {code} {reason} for {url}").format(
            host=host, code=exc.code, reason=exc.reason, url=url
        )
    elif isinstance(exc, ValueError):
        why = _("{url!r} is not a URL that can be downloaded ({error})").format(url=url, error=exc)
    else:
        reason = getattr(exc, "reason", exc)
        why = _("{host} cannot be reached ({reason}); this machine may be offline").format(host=host, reason=reason)
    return DatasetError(
        _("{label} could not be downloaded: {why}. {what_to_do}").format(
            label=tr(k.label), why=why, what_to_do=_what_to_do(k)
        )
    )


def _open(url: str, method: str, timeout: float):
    request = urllib.request.Request(url, method=method, headers={"User-Agent": "augmentation-lab"})
    return urllib.request.urlopen(request, timeout=timeout)


def _first_answer(k: Kind, file: RemoteFile, method: str, timeout: float):
    """(response, url) from the first mirror that answers; the first mirror's error if none does."""
    first_error = None
    for url in file.urls:
        try:
            return _open(url, method, timeout), url
        except (urllib.error.URLError, OSError, ValueError) as exc:
            first_error = first_error or _network_error(k, url, exc)
    raise first_error


def download_size(kind_key: str, *, url: str | None = None) -> int | None:
    """Bytes a download of that kind fetches, from the server's answer to HEAD (Content-Length);
    None if the server does not say. Raises DatasetError when it cannot be reached (offline)."""
    k = kind(kind_key)
    total = 0
    for file in remote_files(kind_key, url):
        response, unused = _first_answer(k, file, "HEAD", HEAD_TIMEOUT_S)
        with response:
            length = response.headers.get("Content-Length")
        if length is None or not length.isdigit():
            return None
        total += int(length)
    return total


def download(
    kind_key: str,
    progress: Callable[[int, int | None], None] | None = None,
    *,
    url: str | None = None,
    root: Path | None = None,
    md5: Mapping[str, str] | None = None,
) -> Path:
    """Download torchvision's files of that kind, check their md5 and unpack them in torchvision's
    layout under root (default home()/datasets), where core.data then finds them; returns their folder.

    progress(bytes so far, total bytes or None) is called as the bytes arrive, from 0 to the total.
    url: the folder URL the files are in (see remote_files). md5: checksums by file name that
    replace torchvision's (a mirror holding other files, tests). Nothing half-done is left behind:
    files are fetched and unpacked under temporary names and moved into place at the end.
    """
    k = kind(kind_key)
    files = remote_files(kind_key, url)
    if md5:
        unknown = set(md5) - {f.name for f in files}
        if unknown:
            raise DatasetError(
                _("md5 given for {files}, which {label} does not download").format(
                    files=sorted(unknown), label=tr(k.label)
                )
            )
        files = [RemoteFile(f.name, md5.get(f.name, f.md5), f.urls) for f in files]
    root = Path(root) if root is not None else data.datasets_root()
    root.mkdir(parents=True, exist_ok=True)
    total: int | None = None
    if len(files) > 1:
        try:
            total = download_size(kind_key, url=url)
        except DatasetError:
            total = None  # the GETs below say what is wrong
    done = 0
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    fetched: list[tuple[RemoteFile, Path]] = []
    try:
        for file in files:
            target = root / f".download-{tag}-{file.name}"
            response, used = _first_answer(k, file, "GET", TIMEOUT_S)
            digest = hashlib.md5()
            try:
                with response, target.open("wb") as out:
                    if len(files) == 1:
                        length = response.headers.get("Content-Length")
                        total = int(length) if length and length.isdigit() else None
                    if progress is not None:
                        progress(done, total)
                    while chunk := response.read(CHUNK_BYTES):
                        out.write(chunk)
                        digest.update(chunk)
                        done += len(chunk)
                        if progress is not None:
                            progress(done, total)
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:  # the connection dropped
                raise _network_error(k, used, exc) from exc
            fetched.append((file, target))
            if digest.hexdigest() != file.md5:
                raise DatasetError(
                    _(
                        "{label}: {name} from {url} does not match its checksum (md5 {md5}, expected {expected}): "
                        "the download is damaged or not the right file, so it was not used. Try again. {what_to_do}"
                    ).format(
                        label=tr(k.label),
                        name=file.name,
                        url=used,
                        md5=digest.hexdigest(),
                        expected=file.md5,
                        what_to_do=_what_to_do(k),
                    )
                )
        folder = _unpack(k, fetched, root, tag)
    finally:
        for unused, target in fetched:
            target.unlink(missing_ok=True)
        for leftover in root.glob(f".download-{tag}-*"):
            leftover.unlink(missing_ok=True)
    return folder


def _unpack(k: Kind, fetched: list[tuple[RemoteFile, Path]], root: Path, tag: str) -> Path:
    """Put the fetched files where torchvision's class reads them: the archive's folder, or raw/."""
    relative = data.torchvision_folder(k.torchvision, Path())
    final = root / relative
    needed = data.torchvision_files(k.torchvision)
    staging = root / f".unpack-{tag}"
    try:
        staging.mkdir(parents=True)
        for file, path in fetched:
            if file.name.endswith((".tar.gz", ".tgz")):
                _extract_tar(k, path, staging)
            elif file.name.endswith(".gz"):
                out = staging / relative / file.name[: -len(".gz")]
                out.parent.mkdir(parents=True, exist_ok=True)
                try:
                    with gzip.open(path) as src, out.open("wb") as dst:
                        shutil.copyfileobj(src, dst, CHUNK_BYTES)
                except (OSError, EOFError) as exc:
                    raise DatasetError(
                        _("{label}: {name} is not a valid gzip file ({error}).").format(
                            label=tr(k.label), name=file.name, error=exc
                        )
                    ) from exc
        unpacked = staging / relative
        missing = [f for f in needed if not (unpacked / f).is_file()]
        if missing:
            raise DatasetError(
                _(
                    "{label}: the download unpacked without {files} in {folder}; it is not "
                    "torchvision's archive. {what_to_do}"
                ).format(label=tr(k.label), files=", ".join(missing), folder=relative, what_to_do=_what_to_do(k))
            )
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():  # an incomplete copy from before: replaced whole
            shutil.rmtree(final) if final.is_dir() else final.unlink()
        os.replace(unpacked, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def _extract_tar(k: Kind, archive: Path, into: Path) -> None:
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar.getmembers():
                target = (into / member.name).resolve()
                if not target.is_relative_to(into.resolve()) or member.issym() or member.islnk():
                    raise DatasetError(
                        _("{label}: the archive holds the unsafe entry {name!r}; not unpacked.").format(
                            label=tr(k.label), name=member.name
                        )
                    )
            tar.extractall(into, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DatasetError(
            _("{label}: the downloaded archive cannot be unpacked ({error}).").format(label=tr(k.label), error=exc)
        ) from exc


# ============================================================================
# Command line: python -m core.data.sources [download KIND | use KIND PATH | forget KIND PATH]
# ============================================================================


def _print_progress(done: int, total: int | None) -> None:
    shown = f"{done / 1e6:,.1f} / {total / 1e6:,.1f} MB" if total else f"{done / 1e6:,.1f} MB"
    print(f"\r  {shown}", end="", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m core.data.sources",
        description=_(
            "Where CIFAR-10, MNIST, Fashion-MNIST and photos come from on this machine; download or register them."
        ),
    )
    sub = p.add_subparsers(dest="command")
    dl = sub.add_parser("download", help=_("download torchvision's files of a kind"))
    dl.add_argument("kind", choices=[k for k, v in KINDS.items() if v.torchvision])
    dl.add_argument(
        "--url",
        help=_("folder URL of the files (default: torchvision's, or ${env}/<kind>)").format(env=DOWNLOAD_BASE_ENV),
    )
    use = sub.add_parser("use", help=_("use a zip or folder of class folders as a kind"))
    use.add_argument("kind", choices=list(KINDS))
    use.add_argument("path")
    forget = sub.add_parser("forget", help=_("stop using a zip or folder as a kind"))
    forget.add_argument("kind", choices=list(KINDS))
    forget.add_argument("path")
    args = p.parse_args(argv)
    try:
        if args.command == "download":
            label = tr(KINDS[args.kind].label)
            print(_("Downloading {label} ...").format(label=label), file=sys.stderr)
            folder = download(args.kind, _print_progress, url=args.url)
            print("\n" + _("{label}: files in {folder}").format(label=label, folder=folder))
        elif args.command in ("use", "forget"):
            local = Path(args.path).expanduser()
            dataset = args.path if args.path.startswith(("zip:", "folder:")) else f"{'folder' if local.is_dir() else 'zip'}:{local}"
            if args.command == "use":
                data.describe_images(dataset)  # refuse what is not a dataset before remembering it
                register(args.kind, dataset)
            else:
                unregister(args.kind, dataset)
    except DatasetError as exc:
        print(f"\n{exc}", file=sys.stderr)
        return 1
    for key, k in KINDS.items():
        found = resolve(key)
        where = (
            _("{source} ({dataset})").format(source=found.source, dataset=found.dataset)
            if found
            else _("missing: {how_to_get}").format(how_to_get=tr(k.how_to_get))
        )
        print(f"{tr(k.label):28} {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
