"""Shared helpers of the training benchmarks: CIFAR-10 from the shared zip, timing, tables.

The benchmarks time the project against references on a 2-core laptop-class CPU that other
work may share, so every report starts with a line saying how busy the machine was (the load
average) and compares contenders measured side by side in one process, never against figures
taken at another time.
"""
from __future__ import annotations

import hashlib
import os
import platform
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

CIFAR_ZIP = Path("/work/shared/data/cifar10.zip")


def cifar_dataset_name(path: Path = CIFAR_ZIP) -> str:
    """The dataset name core.data understands for the zip; fails with a clear message if it is missing."""
    if not path.is_file():
        raise SystemExit(f"{path} is missing: these benchmarks need CIFAR-10 as a zip of class folders there")
    return f"zip:{path}"


def load_cifar10(path: Path = CIFAR_ZIP):
    """The 50,000 + 10,000 images as a core.data.DatasetBundle of uint8 tensors.

    The first call decodes every JPEG (about half a minute) and caches the tensors under
    AUGLAB_HOME; later calls read the cache in a second or two.
    """
    from core.data import load_dataset

    return load_dataset(cifar_dataset_name(path))


def extracted_cifar10(path: Path = CIFAR_ZIP) -> Path:
    """The zip unpacked once into the temporary folder, for torchvision's ImageFolder.

    Returns the folder holding train/ and test/. The folder name carries the zip's size and
    modification time, so a changed zip is unpacked again and an unchanged one never twice.
    """
    st = path.stat()
    tag = hashlib.sha256(f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:12]
    target = Path(tempfile.gettempdir()) / f"auglab-bench-cifar10-{tag}"
    done = target / ".complete"
    if not done.exists():
        partial = target.with_name(target.name + f".partial{os.getpid()}")
        with zipfile.ZipFile(path) as archive:
            archive.extractall(partial)
        if target.exists():  # another run finished first; keep its copy
            import shutil

            shutil.rmtree(partial)
        else:
            os.replace(partial, target)
        done.touch()
    roots = [p.parent for p in target.rglob("train") if p.is_dir() and (p.parent / "test").is_dir()]
    if not roots:
        raise SystemExit(f"{path} has no train/ and test/ folders")
    return roots[0]


def load_average() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def machine_line() -> str:
    """One line on what the numbers were measured on, the load average included."""
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch threads, load average {load_average():.1f}"
    )


@dataclass
class Measurement:
    """Images processed over seconds, plus the load average while it ran."""

    images: int
    seconds: float
    load: float

    @property
    def per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else float("nan")


def timed(fn: Callable[[], int]) -> Measurement:
    """Run fn (which returns how many images it processed) and time it."""
    start = time.perf_counter()
    images = fn()
    return Measurement(images, time.perf_counter() - start, load_average())


def median(values: Iterable[float]) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def print_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """A plain text table: numbers right-aligned, text left-aligned."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    numeric = [all(_is_number(r[i]) for r in cells) if cells else False for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    print(line(list(headers)))
    print(line(["-" * w for w in widths]))
    for row in cells:
        print(line(row))
    sys.stdout.flush()


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return str(value)


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", "").rstrip("x%"))
        return True
    except ValueError:
        return False


# ---- training against the clock ----------------------------------------------------------------


@dataclass
class TimedRun:
    """A training run's evaluations against the training clock, and what was left off it."""

    points: list[dict]  # {"epoch", "train_s", "test_acc", "load"} at every evaluation
    setup_s: float  # loading the data and building the model
    eval_s: float  # the evaluations
    wall_s: float
    images_per_s: float  # over the training clock
    device: str  # as the run's Started event describes it

    def first_reaching(self, accuracy: float) -> dict | None:
        """The first evaluation at `accuracy` or above, if any."""
        return next((p for p in self.points if p["test_acc"] >= accuracy), None)

    def best_within(self, seconds: float) -> float | None:
        return max((p["test_acc"] for p in self.points if p["train_s"] <= seconds), default=None)


def timed_training(cfg, on_eval: Callable[[dict, TimedRun], None] | None = None) -> TimedRun:
    """Train `cfg` with core's trainer (as the dashboard and the CLI do) and time it.

    The training clock is the sum of the trainer's step times (each Step event's batch size /
    images_per_s): batch making, augmentation, forward, backward and the optimiser. Loading,
    building and evaluating are counted apart (setup_s, eval_s), so nothing is hidden.
    on_eval(point, run so far) is called at every evaluation, e.g. to print a line.
    """
    from core.training.allocator import keep_freed_memory
    from core.training.events import Eval, Failed, Finished, Started, Step, Stopped
    from core.training.loop import train_events

    keep_freed_memory()  # as a trainer process does (core.cli)
    run = TimedRun([], 0.0, 0.0, 0.0, 0.0, "")
    train_s, steps = 0.0, 0
    start = last_event_at = time.perf_counter()
    final = None
    for event in train_events(cfg):
        now = time.perf_counter()
        if isinstance(event, Started):
            run.setup_s, run.device = now - start, event.device
        elif isinstance(event, Step):
            train_s += cfg.run.batch_size / event.images_per_s
            steps += 1
        elif isinstance(event, Eval):
            run.eval_s += now - last_event_at  # the evaluation ran between the last step and this event
            run.images_per_s = steps * cfg.run.batch_size / train_s if train_s else 0.0
            point = {"epoch": event.epoch, "train_s": round(train_s, 1), "test_acc": event.test_acc,
                     "load": round(load_average(), 1)}
            run.points.append(point)
            if on_eval:
                on_eval(point, run)
        elif isinstance(event, (Finished, Failed, Stopped)):
            final = event
        last_event_at = time.perf_counter()
    if isinstance(final, Failed):
        raise SystemExit(f"the run failed: {final.message}")
    run.wall_s = time.perf_counter() - start
    return run
