"""Training-time augmentation throughput: our batched pipeline against per-image torchvision.

The CIFAR recipe (flip, pad-4 crop, ColorJitter, Cutout, then Mixup) on batches of 256 32x32
images, augmentation stage only (no model), in images per second:

  ours        core.augment.Pipeline.apply on whole uint8 batches (floats from the first step
              that computes), then mixing.mixup
  (a) per-image  torchvision transforms on PIL images, one process, stacked, then Mixup
  (b) DataLoader the same per-image transform in a torch DataLoader with 2 workers

Images come from /work/shared/data/cifar10.zip when it is there (decoded to memory first, so
no run pays for JPEG decoding), otherwise random pictures.

    python bench/augment_batch.py
    python bench/augment_batch.py --images 4096 --threads 0   # torch's default thread count

Ours runs with one torch thread by default, like the per-image pipeline (a); (b) uses two
processes. On a machine whose cores are busy with other work, torch's default of one thread per
core makes every small batched op wait for the slowest thread (ours then drops below the
per-image pipelines); on an idle machine --threads 0 may be faster.

Like a trainer process, the bench first has glibc's malloc keep freed memory for reuse
(core/training/allocator.py; --malloc-default leaves it as it is) for all three contenders.

Images/s is by the wall clock; "per CPU-s" divides by this process's CPU time instead, which
is steadier on a machine shared with other work (it cannot be given for the DataLoader, whose
work happens in its worker processes).
"""
from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.augment import Pipeline, mixing  # noqa: E402
from core.training.allocator import keep_freed_memory  # noqa: E402

CIFAR_ZIP = Path("/work/shared/data/cifar10.zip")
BATCH = 256
CLASSES = 10
MIXUP_ALPHA = 1.0
STEPS = (
    ("hflip", {"p": 0.5}),
    ("pad_crop", {"padding": 4}),
    ("color_jitter", {"brightness": 0.4, "contrast": 0.4, "saturation": 0.4, "hue": 0.1}),
    ("cutout", {"size": 0.5}),  # one 16x16 hole, as DeVries & Taylor on CIFAR-10
)


class Cutout(torch.nn.Module):
    """DeVries & Taylor's Cutout on a float tensor image (the same code our export emits)."""

    def __init__(self, length: int):
        super().__init__()
        self.length = length

    def forward(self, img):
        h, w = img.shape[-2:]
        y, x = int(torch.randint(h, (1,))), int(torch.randint(w, (1,)))
        half = self.length // 2
        img = img.clone()
        img[..., max(0, y - half):min(h, y + half), max(0, x - half):min(w, x + half)] = 0
        return img


def per_image_transform() -> v2.Compose:
    return v2.Compose([
        v2.RandomHorizontalFlip(),
        v2.RandomCrop(32, padding=4),
        v2.ColorJitter(0.4, 0.4, 0.4, 0.1),
        v2.PILToTensor(),
        v2.ToDtype(torch.float32, scale=True),
        Cutout(16),
    ])


def load_images(count: int) -> tuple[np.ndarray, np.ndarray, str]:
    """[count, 32, 32, 3] uint8 pictures and their labels."""
    if CIFAR_ZIP.exists():
        with zipfile.ZipFile(CIFAR_ZIP) as archive:
            names = sorted(n for n in archive.namelist() if n.startswith("cifar10/train/") and n.endswith(".jpg"))
            step = max(1, len(names) // count)
            names = names[::step][:count]
            classes = sorted({n.split("/")[2] for n in names})
            pixels = np.stack([np.asarray(Image.open(io.BytesIO(archive.read(n))).convert("RGB")) for n in names])
            labels = np.array([classes.index(n.split("/")[2]) for n in names])
        return pixels, labels, f"{len(names)} CIFAR-10 training images"
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8), rng.integers(0, CLASSES, count), f"{count} random images"


class PILDataset(Dataset):
    def __init__(self, pixels: np.ndarray, labels: np.ndarray):
        self.images = [Image.fromarray(p) for p in pixels]
        self.labels = labels.tolist()
        self.transform = per_image_transform()

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.transform(self.images[i]), self.labels[i]


class Clock:
    """Wall and CPU time (this process) of a block, for images per second by both."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def ours(pixels: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    pipeline = Pipeline.of(*STEPS)
    data = torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()  # uint8 [N, 3, 32, 32], as the trainer keeps it
    targets = torch.from_numpy(labels)
    g = torch.Generator().manual_seed(0)
    with Clock() as clock:
        for i in range(0, len(data), BATCH):
            # uint8 in, as BatchMaker hands it over: the flip and the crop run on the bytes
            x, _ = pipeline.apply(data[i:i + BATCH], g)
            mixing.mixup(x, targets[i:i + BATCH], CLASSES, MIXUP_ALPHA, g)
    return len(data) / clock.wall, len(data) / clock.cpu


def per_image(pixels: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    dataset = PILDataset(pixels, labels)
    g = torch.Generator().manual_seed(0)
    with Clock() as clock:
        for i in range(0, len(dataset), BATCH):
            items = [dataset[j] for j in range(i, min(i + BATCH, len(dataset)))]
            x = torch.stack([img for img, _ in items])
            y = torch.tensor([label for _, label in items])
            mixing.mixup(x, y, CLASSES, MIXUP_ALPHA, g)
    return len(dataset) / clock.wall, len(dataset) / clock.cpu


def data_loader(pixels: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    loader = DataLoader(PILDataset(pixels, labels), batch_size=BATCH, num_workers=2)
    g = torch.Generator().manual_seed(0)
    batches = iter(loader)
    next(batches)  # starting the workers is not timed (they prefetch meanwhile, in their favour)
    count = 0
    with Clock() as clock:
        for x, y in batches:
            mixing.mixup(x, y, CLASSES, MIXUP_ALPHA, g)
            count += len(x)
    return count / clock.wall, float("nan")  # the workers' CPU time is not this process's


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=5120, help="images per measurement")
    parser.add_argument("--repeats", type=int, default=5, help="measurements per contender")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (0: torch's default); see the note at the top")
    parser.add_argument("--malloc-default", action="store_true",
                        help="leave glibc's allocator as it is instead of keeping freed memory, as trainers do")
    args = parser.parse_args()
    kept = False if args.malloc_default else keep_freed_memory()
    if args.threads:
        torch.set_num_threads(args.threads)
    pixels, labels, source = load_images(args.images)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{source}, batches of {BATCH}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs, load average {load:.1f}; {args.repeats} runs each; "
          f"freed memory {'kept for reuse' if kept else 'left to the system allocator'} (all contenders)")
    print(f"  {'':28} {'images/s':>10} {'best':>8} {'per CPU-s':>10}   (median and best of the runs)")
    contenders = {"ours (batched)": ours, "(a) per-image, 1 process": per_image, "(b) DataLoader, 2 workers": data_loader}
    runs = {name: [] for name in contenders}
    for _ in range(args.repeats):  # interleaved, so that a change in the machine's load hits all three
        for name, fn in contenders.items():
            runs[name].append(fn(pixels, labels))
    median, best = {}, {}
    for name, measured in runs.items():
        median[name] = statistics.median(r[0] for r in measured)
        best[name] = max(r[0] for r in measured)
        print(f"  {name:<28} {median[name]:10.0f} {best[name]:8.0f} {statistics.median(r[1] for r in measured):10.0f}")
    a, b = "(a) per-image, 1 process", "(b) DataLoader, 2 workers"
    for label, rate in (("median", median), ("best", best)):
        mine = rate["ours (batched)"]
        print(f"  {label:>6}: ours / (a) = {mine / rate[a]:.1f}x (target 10x), ours / (b) = {mine / rate[b]:.1f}x (target 5x)")


if __name__ == "__main__":
    main()
