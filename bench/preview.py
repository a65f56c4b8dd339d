"""How long the lab page takes to draw its default preview grid, in Python and in a browser.

The page loads a photo with core.data.images.load_image(..., max_side=512) (the working picture)
and computes the grid's tiles at the size it shows them (pages/ui/state.tile_side: 256 px for
the default 4 columns), a full-size tile on request. This script times the grid as the page
computes it (target: a median of at most 50 ms), and for reference the grid at the working 512 px
and at the photo's full 1024x768. The photo is skimage's astronaut resized to 1024x768 and saved
as a JPEG, like an upload.

--browser measures what a user waits for: the app runs in a Streamlit server, headless Chromium
(Playwright) opens the lab with that photo uploaded, and the ColorJitter brightness slider is
dragged and released --moves times; each time is from the mouse's release to the moment every
tile of the grid shows a new, fully loaded picture (target: a median of at most 300 ms).

    python bench/preview.py            # the grid's medians and the ratio to the 50 ms target
    python bench/preview.py --runs 30 --threads 0   # torch's default thread count
    python bench/preview.py --browser --moves 20    # slider release to new grid in Chromium

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
from pages.ui.state import PREVIEW_SIDE, tile_side  # noqa: E402

TARGET_MS = 50.0  # the default grid, as the page computes it
BROWSER_TARGET_MS = 300.0  # slider released -> every tile redrawn, in a real browser
GRID = 8  # tiles in the page's default grid
COLS = 4  # and its columns
DEFAULT_STEPS = ("hflip", "random_resized_crop", "color_jitter", "cutout")


def photo_bytes() -> bytes:
    image = Image.fromarray(data.astronaut()).resize((1024, 768), Image.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def timings_ms(pipeline: Pipeline, image: torch.Tensor, runs: int, side: int | None = None) -> tuple[float, float, float]:
    """Median wall time, fastest wall time and median CPU time of pipeline.preview.

    CPU time (this process, all its threads) is shown because on a shared machine the wall time
    also counts the time spent waiting for a core; with one thread and an idle machine the two
    agree.
    """
    pipeline.preview(image, n=GRID, seed=10_000, side=side)  # warm-up
    wall, cpu = [], []
    for seed in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        pipeline.preview(image, n=GRID, seed=seed, side=side)
        wall.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    return statistics.median(wall), min(wall), statistics.median(cpu)


# every tile of the grid (its images carry captions "#1 · ...") shows a picture that is not one
# of `old` and has finished loading
GRID_IMAGES_JS = """() => Array.from(document.querySelectorAll('[data-testid="stImage"]'))
    .filter(el => (el.querySelector('[data-testid="stImageCaption"]')?.innerText || '').startsWith('#'))
    .map(el => el.querySelector('img'))"""
NEW_GRID_JS = ("([old, n]) => { const imgs = (" + GRID_IMAGES_JS + ")(); return imgs.length === n && "
               "imgs.every(img => img && !old.includes(img.src) && img.complete && img.naturalWidth > 0); }")


def browser(moves: int) -> None:
    """Slider released -> new grid, in headless Chromium against a real server."""
    import tempfile

    from live_overhead import browser_page, streamlit_server

    with tempfile.TemporaryDirectory() as home, streamlit_server(Path(home)) as (unused, url), browser_page() as page:
        page.set_default_timeout(120_000)
        page.goto(url)
        page.get_by_role("heading", name="Augmentation Lab").first.wait_for()
        upload = page.get_by_test_id("stSidebar").locator('input[type="file"]').first
        upload.set_input_files(files=[{"name": "astronaut.jpg", "mimeType": "image/jpeg", "buffer": photo_bytes()}])
        page.get_by_text("Original: astronaut.jpg").wait_for()
        page.wait_for_function(f"() => ({GRID_IMAGES_JS})().length === {GRID}")
        # the slider's thumb: the box around its (visually hidden) range input
        thumb = page.locator('.st-key-lab-step2-color_jitter-brightness input[type="range"]').locator("xpath=../..")
        thumb.scroll_into_view_if_needed()
        times = []
        for k in range(moves + 1):  # the first move warms the caches up and is not counted
            old = page.evaluate(f"() => ({GRID_IMAGES_JS})().map(img => img.src)")
            box = thumb.bounding_box()
            x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
            page.mouse.move(x, y)
            page.mouse.down()
            page.mouse.move(x + (12 if k % 2 == 0 else -12), y, steps=3)
            start = time.perf_counter()
            page.mouse.up()
            page.wait_for_function(NEW_GRID_JS, arg=[old, GRID], polling="raf")
            if k:
                times.append((time.perf_counter() - start) * 1000)
            time.sleep(0.3)
    med = statistics.median(times)
    print(f"\nbrowser: slider released -> all {GRID} tiles redrawn, {moves} moves (Chromium, Playwright)")
    print(f"  median {med:.0f} ms, fastest {min(times):.0f} ms, slowest {max(times):.0f} ms: "
          f"median {med / BROWSER_TARGET_MS:.2f}x the {BROWSER_TARGET_MS:.0f} ms target")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15, help="timed repetitions per measurement")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (0: torch's default); see the note at the top")
    parser.add_argument("--browser", action="store_true", help="time slider release -> new grid in Chromium instead")
    parser.add_argument("--moves", type=int, default=20, help="slider moves timed with --browser")
    args = parser.parse_args()
    if args.browser:
        browser(args.moves)
        return
    if args.threads:
        torch.set_num_threads(args.threads)

    raw = photo_bytes()
    working = load_image(raw, max_side=PREVIEW_SIDE).tensor
    side = tile_side(COLS)
    sizes = {
        f"tiles at {side} px (what the page computes, {COLS} columns)": (working, side),
        f"working picture, {PREVIEW_SIDE} px": (working, None),
        "full 1024x768": (load_image(raw, max_side=None).tensor, None),
    }
    pipelines = {"whole default pipeline": Pipeline.of(*DEFAULT_STEPS)}
    pipelines.update({f"  {name} alone": Pipeline.of(name) for name in DEFAULT_STEPS})

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"load average {load:.1f}; grid of {GRID}; {args.runs} runs each")
    for size_name, (image, at_side) in sizes.items():
        print(f"\n{size_name}: image {tuple(image.shape)}")
        print(f"  {'':28} {'median':>8} {'fastest':>8} {'CPU':>8}   (ms)")
        for name, pipeline in pipelines.items():
            med, best, cpu = timings_ms(pipeline, image, args.runs, at_side)
            ratio = f"  median {med / TARGET_MS:.2f}x, CPU {cpu / TARGET_MS:.2f}x the {TARGET_MS:.0f} ms target" \
                if name.startswith("whole") and at_side else ""
            print(f"  {name:<28} {med:8.1f} {best:8.1f} {cpu:8.1f}{ratio}")


if __name__ == "__main__":
    main()
