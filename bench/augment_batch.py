"""Training-time augmentation throughput: our batched pipeline against per-image torchvision.

The CIFAR recipe (flip, pad-4 crop, ColorJitter, Cutout, then Mixup) on batches of 256 32x32
images, augmentation stage only (no model), in images per second:

  ours        core.augment.Pipeline.apply on whole uint8->float batches, then mixing.mixup
  (a) per-image  torchvision transforms on PIL images, one process, stacked, then Mixup
  (b) DataLoader the same per-image transform in a torch DataLoader with 2 workers

Images come from /work/shared/data/cifar10.zip when it is there (decoded to memory first, so
no run pays for JPEG decoding), otherwise random pictures.

    python bench/augment_batch.py
    python bench/augment_batch.py --images 4096 --threads 1
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
        img = img.clone()
        img[..., max(0, y - self.length // 2):min(h, y + self.length // 2), max(0, x - self.length // 2):min(w, x + self.length // 2)] = 0
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


def ours(pixels: np.ndarray, labels: np.ndarray) -> float:
    pipeline = Pipeline.of(*STEPS)
    data = torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()  # uint8 [N, 3, 32, 32], as the trainer keeps it
    targets = torch.from_numpy(labels)
    g = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for i in range(0, len(data), BATCH):
        x = data[i:i + BATCH].float().div_(255)
        x, _ = pipeline.apply(x, g)
        mixing.mixup(x, targets[i:i + BATCH], CLASSES, MIXUP_ALPHA, g)
    return len(data) / (time.perf_counter() - start)


def per_image(pixels: np.ndarray, labels: np.ndarray) -> float:
    dataset = PILDataset(pixels, labels)
    g = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for i in range(0, len(dataset), BATCH):
        items = [dataset[j] for j in range(i, min(i + BATCH, len(dataset)))]
        x = torch.stack([img for img, _ in items])
        y = torch.tensor([label for _, label in items])
        mixing.mixup(x, y, CLASSES, MIXUP_ALPHA, g)
    return len(dataset) / (time.perf_counter() - start)


def data_loader(pixels: np.ndarray, labels: np.ndarray) -> float:
    loader = DataLoader(PILDataset(pixels, labels), batch_size=BATCH, num_workers=2, persistent_workers=True)
    g = torch.Generator().manual_seed(0)
    for x, y in loader:  # first epoch starts the workers; not timed
        break
    start = time.perf_counter()
    count = 0
    for x, y in loader:
        mixing.mixup(x, y, CLASSES, MIXUP_ALPHA, g)
        count += len(x)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=5120, help="images per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per contender (the median is shown)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads in this process (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    pixels, labels, source = load_images(args.images)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{source}, batches of {BATCH}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs, load average {load:.1f}; median of {args.repeats} runs")
    results = {}
    for name, fn in (("ours (batched)", ours), ("(a) per-image, 1 process", per_image), ("(b) DataLoader, 2 workers", data_loader)):
        results[name] = statistics.median(fn(pixels, labels) for _ in range(args.repeats))
        print(f"  {name:<28} {results[name]:10.0f} images/s")
    mine = results["ours (batched)"]
    print(f"  ours / (a) = {mine / results['(a) per-image, 1 process']:.1f}x (target 10x), "
          f"ours / (b) = {mine / results['(b) DataLoader, 2 workers']:.1f}x (target 5x)")


if __name__ == "__main__":
    main()
