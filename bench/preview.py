"""How long the lab page takes to draw its default preview grid.

The page loads a photo with core.data.images.load_image(..., max_side=512), so the grid is rendered
at 512 px on the long side whatever the upload's size; this script times that working size
(the number the page's responsiveness depends on) and, for reference, the full 1024x768 photo.
The photo is skimage's astronaut resized to 1024x768 and saved as a JPEG, like an upload.

    python bench/preview.py            # prints medians and the ratio to the 150 ms target
    python bench/preview.py --runs 30 --threads 0   # torch's default thread count

It runs with one torch thread by default: on a machine whose cores are busy with other work,
torch's default of one thread per core makes every op wait for the slowest thread (several
times slower); --threads 0 uses torch's default. The wall-clock median also includes waiting
for a core, so the CPU time is printed too: with one thread on an idle machine they agree.
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
from core.data.images import load_image  # noqa: E402

TARGET_MS = 150.0  # the default grid should feel instant when a slider moves
GRID = 8  # tiles in the page's default grid
DEFAULT_STEPS = ("hflip", "random_resized_crop", "color_jitter", "cutout")


def photo_bytes() -> bytes:
    image = Image.fromarray(data.astronaut()).resize((1024, 768), Image.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def timings_ms(pipeline: Pipeline, image: torch.Tensor, runs: int) -> tuple[float, float, float]:
    """Median wall time, fastest wall time and median CPU time of pipeline.preview.

    CPU time (this process, all its threads) is shown because on a shared machine the wall time
    also counts the time spent waiting for a core; with one thread and an idle machine the two
    agree.
    """
    pipeline.preview(image, n=GRID, seed=10_000)  # warm-up
    wall, cpu = [], []
    for seed in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        pipeline.preview(image, n=GRID, seed=seed)
        wall.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    return statistics.median(wall), min(wall), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15, help="timed repetitions per measurement")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (0: torch's default); see the note at the top")
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
          f"load average {load:.1f}; grid of {GRID}; {args.runs} runs each")
    for size_name, image in sizes.items():
        print(f"\n{size_name}: image {tuple(image.shape)}")
        print(f"  {'':28} {'median':>8} {'fastest':>8} {'CPU':>8}   (ms)")
        for name, pipeline in pipelines.items():
            med, best, cpu = timings_ms(pipeline, image, args.runs)
            ratio = f"  median {med / TARGET_MS:.2f}x, CPU {cpu / TARGET_MS:.2f}x the {TARGET_MS:.0f} ms target" \
                if name.startswith("whole") else ""
            print(f"  {name:<28} {med:8.1f} {best:8.1f} {cpu:8.1f}{ratio}")


if __name__ == "__main__":
    main()
