"""Pictures to play with before uploading one's own.

Real photographs come from the files scikit-image ships inside its package (no download: the
ones its `skimage.data` fetches with pooch are left out). The package is located without being
imported, which would cost a second at start-up. One picture is drawn here, so the lab works
even where scikit-image is missing.
"""
from __future__ import annotations

import importlib.util
import io
from functools import lru_cache
from pathlib import Path
from typing import Callable

from PIL import Image, ImageDraw

from core.data.images import LoadedImage, load_image
from core.i18n import N_

# Sample names are keys (English, marked for the catalog): a page shows them as tr(name).
SYNTHETIC = N_("synthetic scene")
# sample name -> file in scikit-image's data folder
SKIMAGE_FILES = {
    N_("cat (chelsea)"): "chelsea.png",
    N_("astronaut"): "astronaut.png",
    N_("coffee"): "coffee.png",
    N_("rocket"): "rocket.jpg",
    N_("motorcycle"): "motorcycle_left.png",
    N_("cameraman (grayscale)"): "camera.png",
}
DEFAULT_SAMPLE = "cat (chelsea)"


def _skimage_data_dir() -> Path | None:
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "data"


@lru_cache(maxsize=1)
def synthetic_scene() -> bytes:
    """A small landscape as PNG bytes: sky, sun, hills, a house and a tree, with enough edges,
    colours and asymmetry that every augmentation visibly does something."""
    w, h = 384, 256
    im = Image.new("RGB", (w, h))
    draw = ImageDraw.Draw(im)
    for y in range(h):  # sky: deep blue at the top to pale near the horizon
        t = y / h
        draw.line([(0, y), (w, y)], fill=(int(70 + 150 * t), int(130 + 100 * t), int(220 + 30 * t)))
    draw.ellipse((290, 24, 350, 84), fill=(255, 214, 64))
    draw.polygon([(0, 190), (90, 120), (200, 185), (300, 140), (384, 175), (384, 256), (0, 256)], fill=(76, 153, 60))
    draw.rectangle((0, 215, w, h), fill=(58, 120, 46))
    draw.rectangle((70, 150, 160, 220), fill=(200, 80, 60))  # house
    draw.polygon([(60, 152), (115, 105), (170, 152)], fill=(120, 50, 40))
    draw.rectangle((100, 180, 125, 220), fill=(90, 60, 30))
    draw.rectangle((135, 165, 152, 182), fill=(250, 240, 170))
    draw.rectangle((250, 170, 262, 222), fill=(100, 70, 40))  # tree
    draw.ellipse((222, 115, 290, 185), fill=(34, 110, 50))
    draw.text((12, 10), "Augmentation Lab", fill=(255, 255, 255))
    buffer = io.BytesIO()
    im.save(buffer, format="PNG")
    return buffer.getvalue()


def _available() -> dict[str, Callable[[], bytes | Path]]:
    samples: dict[str, Callable[[], bytes | Path]] = {}
    folder = _skimage_data_dir()
    for name, file in SKIMAGE_FILES.items():
        if folder is not None and (folder / file).is_file():
            samples[name] = lambda path=folder / file: path
    samples[SYNTHETIC] = synthetic_scene
    return samples


# name -> zero-argument function giving the encoded picture (bytes or a file path)
SAMPLES: dict[str, Callable[[], bytes | Path]] = _available()


def sample_bytes(name: str) -> bytes:
    try:
        source = SAMPLES[name]()
    except KeyError:
        raise KeyError(f"unknown sample {name!r}; available: {sorted(SAMPLES)}") from None
    return source.read_bytes() if isinstance(source, Path) else source


def load_sample(name: str, max_side: int | None = 512) -> LoadedImage:
    return load_image(sample_bytes(name), max_side)


def default_sample() -> str:
    return DEFAULT_SAMPLE if DEFAULT_SAMPLE in SAMPLES else SYNTHETIC
