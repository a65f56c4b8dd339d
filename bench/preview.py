"""How long the lab page takes to draw its default preview grid.

The page loads a photo with core.images.load_image(..., max_side=512), so the grid is rendered
at 512 px on the long side whatever the upload's size; this script times that working size
(the number the page's responsiveness depends on) and, for reference, the full 1024x768 photo.
The photo is skimage's astronaut resized to 1024x768 and saved as a JPEG, like an upload.

    python bench/preview.py            # prints medians and the ratio to the 150 ms target
    python bench/preview.py --runs 30 --threads 1
"""
from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from PIL import Image
from skimage import data

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.augment import Pipeline  # noqa: E402
from core.images import load_image  # noqa: E402

TARGET_MS = 150.0  # the default grid should feel instant when a slider moves
GRID = 8  # tiles in the page's default grid
DEFAULT_STEPS = ("hflip", "random_resized_crop", "color_jitter", "cutout")


def photo_bytes() -> bytes:
    image = Image.fromarray(data.astronaut()).resize((1024, 768), Image.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def median_ms(pipeline: Pipeline, image: torch.Tensor, runs: int) -> tuple[float, float]:
    """Median and fastest wall time of pipeline.preview over `runs` seeds, after a warm-up."""
    pipeline.preview(image, n=GRID, seed=10_000)
    times = []
    for seed in range(runs):
        start = time.perf_counter()
        pipeline.preview(image, n=GRID, seed=seed)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15, help="timed repetitions per measurement")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    raw = photo_bytes()
    sizes = {
        "512 px (what the page renders)": load_image(raw, max_side=512).tensor,
        "full 1024x768": load_image(raw, max_side=None).tensor,
    }
    pipelines = {"whole default pipeline": Pipeline.of(*DEFAULT_STEPS)}
    pipelines.update({f"  {name} alone": Pipeline.of(name) for name in DEFAULT_STEPS})

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"load average {load:.1f}; grid of {GRID}; median (fastest) of {args.runs} runs")
    for size_name, image in sizes.items():
        print(f"\n{size_name}: image {tuple(image.shape)}")
        for name, pipeline in pipelines.items():
            med, best = median_ms(pipeline, image, args.runs)
            ratio = f"  {med / TARGET_MS:.2f} x the {TARGET_MS:.0f} ms target" if name.startswith("whole") else ""
            print(f"  {name:<28} {med:8.1f} ms ({best:.1f}){ratio}")


if __name__ == "__main__":
    main()
