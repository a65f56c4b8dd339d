"""Datasets people upload as a zip of class folders, kept under home()/uploads/<sha>.zip.

    upload = save_upload("pets.zip", data)     # raises DatasetError with a message for the user
    upload.dataset                             # "zip:/…/uploads/3f2a….zip", for DataConfig.dataset
    list_uploads()                             # what was uploaded before, newest first

An upload whose class names say which kind of dataset it is (CIFAR-10's airplane ... truck) is
registered as that kind (core.data.sources), so the presets train on it.

The file is named by its content's hash, so uploading the same zip twice stores it once and a
run's config keeps pointing at the same bytes. It is validated by loading it exactly as a run
will (core.data.load_dataset with its safety checks: unsafe paths, decompressed size, one class,
empty class folders, files that are not images); a zip that fails is deleted again. The decoded
images stay in core.data's cache, so the first run on an upload does not decode it again.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from core.data import DEFAULT_MAX_BYTES, DatasetError, load_dataset
from core.i18n import _
from core.paths import home

# The same as server.maxUploadSize in .streamlit/config.toml (a test holds them equal), so the page and this module agree.
MAX_UPLOAD_BYTES = 200 * 1024**2


@dataclass(frozen=True)
class Upload:
    name: str  # the file name as uploaded, shown to the user
    sha: str  # first 16 hex digits of the zip's SHA-256
    classes: tuple[str, ...]
    train_size: int
    test_size: int
    image_size: int
    note: str  # what loading did: split, resize, skipped files
    uploaded: float  # unix seconds

    @property
    def path(self) -> Path:
        return uploads_dir() / f"{self.sha}.zip"

    @property
    def dataset(self) -> str:
        """The value for DataConfig.dataset."""
        return f"zip:{self.path}"

    @property
    def summary(self) -> str:
        return _("{name}: {classes} classes, {train:,} train / {test:,} test images, {size}x{size}").format(
            name=self.name, classes=len(self.classes), train=self.train_size, test=self.test_size, size=self.image_size
        )


def uploads_dir() -> Path:
    path = home() / "uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_upload(
    name: str,
    data: bytes,
    *,
    max_bytes: int = MAX_UPLOAD_BYTES,
    max_unpacked_bytes: int = DEFAULT_MAX_BYTES,
) -> Upload:
    """Store an uploaded zip and check that it is a usable dataset; raises DatasetError if not.

    max_bytes limits the zip itself, max_unpacked_bytes what it declares once decompressed (a
    small zip can claim gigabytes).
    """
    if not data:
        raise DatasetError(_("{name} is empty.").format(name=name))
    if len(data) > max_bytes:
        raise DatasetError(
            _(
                "{name} is {size_mb:,.1f} MB; uploads are limited to {limit_mb:,.0f} MB. Use a smaller set or "
                "put the folder on this machine and train with the CLI (--dataset folder:<path>)."
            ).format(name=name, size_mb=len(data) / 1e6, limit_mb=max_bytes / 1e6)
        )
    sha = hashlib.sha256(data).hexdigest()[:16]
    known = _read_meta(sha)
    if known is not None and known.path.is_file():
        _register_if_recognised(known)
        return known  # the same bytes were validated before

    path = uploads_dir() / f"{sha}.zip"
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)  # atomic: a run reading this path never sees half a file
    try:
        bundle = load_dataset(f"zip:{path}", max_bytes=max_unpacked_bytes)
    except DatasetError as exc:
        path.unlink(missing_ok=True)
        # core.data names the stored file (<sha>.zip); the user knows it by its own name.
        raise DatasetError(str(exc).replace(path.name, name)) from None
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    upload = Upload(
        name=name,
        sha=sha,
        classes=bundle.classes,
        train_size=len(bundle.train_y),
        test_size=len(bundle.test_y),
        image_size=bundle.image_size,
        note=bundle.note,
        uploaded=time.time(),
    )
    _meta_path(sha).write_text(json.dumps(asdict(upload)))
    _register_if_recognised(upload)
    return upload


def _register_if_recognised(upload: Upload) -> None:
    """An upload whose class names say what it is (CIFAR-10's airplane ... truck) becomes that
    kind's source for the presets at once (core.data.sources.resolve)."""
    from core.data import sources  # here, not at the top: core.data.sources imports this module

    found = sources.recognise(upload.classes, upload.image_size)
    if found is not None:
        sources.register(found, upload.dataset)


def list_uploads() -> list[Upload]:
    """Uploads that are still on disk, newest first."""
    found = [_read_meta(p.stem) for p in uploads_dir().glob("*.json")]
    return sorted((u for u in found if u is not None and u.path.is_file()), key=lambda u: u.uploaded, reverse=True)


def find_upload(dataset: str) -> Upload | None:
    """The upload a DataConfig.dataset value ("zip:<path>") points at, if it is one of ours."""
    if not dataset.startswith("zip:"):
        return None
    path = Path(dataset[len("zip:"):])
    if path.parent != uploads_dir():
        return None
    return _read_meta(path.stem)


def dataset_title(dataset: str) -> str:
    """A dataset as a person calls it: an upload by the name it was uploaded under ("pets.zip"),
    a zip or folder by its file name, a built-in set by its key ("shapes")."""
    upload = find_upload(dataset)
    if upload is not None:
        return upload.name
    kind, sep, path = dataset.partition(":")
    if sep and kind in ("zip", "folder") and path.strip():
        return Path(path.strip()).name or path.strip()
    return dataset


def _meta_path(sha: str) -> Path:
    return uploads_dir() / f"{sha}.json"


def _read_meta(sha: str) -> Upload | None:
    try:
        meta = json.loads(_meta_path(sha).read_text())
        return Upload(**{**meta, "classes": tuple(meta["classes"])})
    except (OSError, ValueError, TypeError, KeyError):
        return None
