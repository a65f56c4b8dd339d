"""core.data.sources: each source of a kind (torchvision files, a recognised or registered zip, the
embedded digits), downloads from a local HTTP server, and the training budget for small sets.

Nothing here touches the internet: downloads come from an http.server on 127.0.0.1 that serves
archives the tests make, with their checksums passed in place of torchvision's.
"""
from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import os
import pickle
import socket
import struct
import subprocess
import sys
import tarfile
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT
from core import data
from core.data import DatasetError, load_dataset, sources
from core.data.sources import CIFAR10_CLASSES, recognise, resolve, suggest_budget
from core.data.uploads import save_upload
from core.runs import store

# ----------------------------------------------------------------------------
# Files the tests make
# ----------------------------------------------------------------------------


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


def class_folders_zip(classes, per_class: int = 2, size: int = 32, wrap: str = "set") -> bytes:
    """A zip of <wrap>/train/<class>/i.png and <wrap>/test/<class>/i.png, one colour per class."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for c, name in enumerate(classes):
            colour = np.array([25 * c % 256, 255 - 20 * c, 90], np.uint8)
            for split in ("train", "test"):
                for i in range(per_class):
                    pixels = np.broadcast_to(colour, (size, size, 3)).copy()
                    pixels[0, 0] = i  # every file its own bytes
                    zf.writestr(f"{wrap}/{split}/{name}/{i}.png", png(pixels))
    return buffer.getvalue()


def cifar_batches(rng: np.random.Generator, per_batch: int = 4) -> dict[str, bytes]:
    """cifar-10-batches-py in torchvision's format: pickled dicts of uint8 rows of 3 x 32 x 32."""
    files = {}
    for name in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"):
        entry = {"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8), "labels": [i % 10 for i in range(per_batch)]}
        files[name] = pickle.dumps(entry)
    files["batches.meta"] = pickle.dumps({"label_names": list(CIFAR10_CLASSES)})
    return files


def write_cifar_batches(root: Path, rng=None) -> dict[str, bytes]:
    files = cifar_batches(rng or np.random.default_rng(0))
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name, content in files.items():
        (folder / name).write_bytes(content)
    return files


def cifar_archive(padding: int = 600_000, extra: dict[str, bytes] | None = None, folder="cifar-10-batches-py") -> bytes:
    """A tar.gz laid out like torchvision's cifar-10-python.tar.gz, padded with incompressible bytes
    so that it arrives in several chunks."""
    buffer = io.BytesIO()
    files = {f"{folder}/{n}": c for n, c in cifar_batches(np.random.default_rng(1)).items()}
    files[f"{folder}/readme.html"] = np.random.default_rng(2).integers(0, 256, padding, dtype=np.uint8).tobytes()
    files.update(extra or {})
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def idx(array: np.ndarray) -> bytes:
    """The MNIST file format: magic (uint8 data, number of dims), sizes, raw bytes."""
    return struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()


def md5(content: bytes) -> str:
    return hashlib.md5(content).hexdigest()


class Server:
    """http.server on 127.0.0.1 in a thread, serving files from a dict {path: bytes}."""

    def __init__(self, files: dict[str, bytes]):
        self.files = files
        self.requests: list[tuple[str, str]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self, body: bool) -> None:
                outer.requests.append((self.command, self.path))
                content = outer.files.get(self.path)
                if content is None:
                    self.send_error(404, "Not Found")
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                if body:
                    self.wfile.write(content)

            def do_GET(self):
                self._answer(True)

            def do_HEAD(self):
                self._answer(False)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    servers = []

    def start(files):
        servers.append(Server(files))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens there once the socket is closed


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.glob(".*")) if root.exists() else []


# ----------------------------------------------------------------------------
# Recognising a dataset by its class names
# ----------------------------------------------------------------------------


def test_cifar10_class_names_are_recognised_in_any_case_order_or_spelling():
    assert recognise(CIFAR10_CLASSES, 32) == "cifar10"
    assert recognise([c.upper() for c in reversed(CIFAR10_CLASSES)], 32) == "cifar10"
    numbered = [f"{i}_{c}" for i, c in enumerate(CIFAR10_CLASSES)]
    assert recognise(numbered, 32) == "cifar10"
    assert recognise(["plane", "car", *CIFAR10_CLASSES[2:]], 32) == "cifar10"  # the PyTorch tutorial's names
    # The shared cifar10.zip, read from its layout only
    shared = Path(ROOT).parent / "shared" / "data" / "cifar10.zip"
    if shared.is_file():
        overview = data.describe_images(f"zip:{shared}")
        assert recognise(overview.classes, overview.typical_size) == "cifar10"


def test_only_unambiguous_sets_are_recognised():
    assert recognise(CIFAR10_CLASSES[:9], 32) is None  # a class missing
    assert recognise([*CIFAR10_CLASSES, "unicorn"], 32) is None  # a class too many
    assert recognise(CIFAR10_CLASSES, 224) is None  # big photos of those classes are not CIFAR-10
    assert recognise(CIFAR10_CLASSES, 64) == "cifar10"  # CIFAR-10 resized 2x still is
    assert recognise(["airplane", "Airplane", *CIFAR10_CLASSES[1:9]], 32) is None  # two folders, one name
    # Digit folders are MNIST as often as Fashion-MNIST (the shared fashion-mnist.zip uses them)
    assert recognise([str(d) for d in range(10)], 28) is None
    assert recognise(["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four", "5 - five", "6 - six", "7 - seven",
                      "8 - eight", "9 - nine"], 28) == "mnist"  # torchvision's MNIST.classes
    fashion = ["0 T-shirt_top", "1 Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    assert recognise(fashion, 28) == "fashion_mnist"
    assert recognise(["daisy", "rose"], 128) is None  # photos are chosen, never guessed


# ----------------------------------------------------------------------------
# Resolving each kind: torchvision files, then a zip, then the embedded set
# ----------------------------------------------------------------------------


def test_nothing_here_gives_the_embedded_digits_for_mnist_and_none_for_the_rest():
    assert resolve("mnist") == sources.Resolved("mnist", "digits", "embedded scikit-learn digits")
    assert resolve("cifar10") is None and resolve("fashion_mnist") is None and resolve("photos") is None
    with pytest.raises(DatasetError, match="unknown kind"):
        resolve("imagenet")


def test_an_upload_with_cifar10_names_is_recognised_and_resolved_and_torchvision_files_win(auglab_home, monkeypatch):
    upload = save_upload("mini-cifar.zip", class_folders_zip(CIFAR10_CLASSES))
    assert sources.registered_kind(upload.dataset) == "cifar10"
    found = resolve("cifar10")
    assert found == sources.Resolved("cifar10", upload.dataset, "your upload mini-cifar.zip")
    assert load_dataset(found.dataset).classes == CIFAR10_CLASSES  # what a preset would train on

    # torchvision's files, made here in its format, come first
    files = write_cifar_batches(auglab_home / "datasets")
    assert resolve("cifar10") == sources.Resolved("cifar10", "cifar10", "torchvision files")
    assert "cifar10" in data.available_datasets()
    # and load through torchvision's own class (its checksums swapped for those of the test's files)
    cls = data.torchvision_dataset_class("cifar10")
    monkeypatch.setattr(cls, "train_list", [[f"data_batch_{i}", md5(files[f"data_batch_{i}"])] for i in range(1, 6)])
    monkeypatch.setattr(cls, "test_list", [["test_batch", md5(files["test_batch"])]])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": md5(files["batches.meta"])})
    bundle = load_dataset("cifar10")
    assert bundle.train_x.shape == (20, 3, 32, 32) and bundle.classes == CIFAR10_CLASSES
    row = np.frombuffer(pickle.loads(files["data_batch_1"])["data"][0].tobytes(), np.uint8)
    assert np.array_equal(bundle.train_x[0].numpy().reshape(-1), row)


def test_an_upload_with_other_names_is_not_registered():
    upload = save_upload("pets.zip", class_folders_zip(("cat", "dog")))
    assert sources.registered_kind(upload.dataset) is None
    assert all(sources.registered(k) == [] for k in sources.KINDS)


def test_register_and_unregister_persist_and_a_dataset_is_one_kind_at_a_time(tmp_path, auglab_home):
    flowers = tmp_path / "flowers.zip"
    flowers.write_bytes(class_folders_zip(("daisy", "rose"), size=16))
    dataset = f"zip:{flowers}"
    sources.register("photos", dataset)
    assert sources.registered("photos") == [dataset] and sources.registered_kind(dataset) == "photos"
    assert resolve("photos") == sources.Resolved("photos", dataset, "your zip flowers.zip")
    # Stored in the run store's settings, so another process sees it: the CLI, which registers the
    # same file (spelled another way) as another kind, and that moves it there.
    env = {**os.environ, "AUGLAB_HOME": str(auglab_home), "PYTHONPATH": str(ROOT)}
    listed = subprocess.run([sys.executable, "-m", "core.data.sources", "use", "fashion_mnist", f"{tmp_path}/./flowers.zip"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    lines = dict(line.split("  ", 1) for line in listed.stdout.splitlines())
    assert "your zip flowers.zip" in lines["Fashion-MNIST"] and "missing" in lines["Photos (a few classes)"]
    assert "embedded scikit-learn digits" in lines["MNIST (handwritten digits)"]
    assert sources.registered("photos") == [] and sources.registered("fashion_mnist") == [dataset]
    sources.unregister("fashion_mnist", f"zip:{tmp_path}/./flowers.zip")
    assert sources.registered("fashion_mnist") == [] and resolve("fashion_mnist") is None
    sources.unregister("fashion_mnist", dataset)  # not registered: nothing happens

    # newest first; a registered file that was deleted is skipped, not an error
    other = tmp_path / "other.zip"
    other.write_bytes(class_folders_zip(("a", "b"), size=16))
    sources.register("photos", dataset)
    sources.register("photos", f"zip:{other}")
    assert resolve("photos").dataset == f"zip:{other}"
    other.unlink()
    assert resolve("photos").dataset == dataset

    with pytest.raises(DatasetError, match="only a 'zip:<path>' or 'folder:<path>'"):
        sources.register("cifar10", "shapes")
    with pytest.raises(DatasetError, match="unknown kind"):
        sources.register("imagenet", dataset)


def test_pointing_to_a_folder_recognises_it_and_a_path_that_is_not_a_dataset_says_why(tmp_path):
    with zipfile.ZipFile(io.BytesIO(class_folders_zip(CIFAR10_CLASSES, wrap="cifar"))) as zf:
        zf.extractall(tmp_path / "unzipped")
    pointed = sources.point_to(str(tmp_path / "unzipped"))
    assert pointed.dataset == f"folder:{(tmp_path / 'unzipped').resolve()}" and pointed.kind == "cifar10"
    assert (pointed.overview.train_files, pointed.overview.test_files, pointed.overview.typical_size) == (20, 20, 32)
    assert resolve("cifar10").source == "your folder unzipped"
    mine = tmp_path / "mine.zip"
    mine.write_bytes(class_folders_zip(("a", "b")))
    assert sources.point_to(f"zip:{mine}").kind is None and sources.registered_kind(f"zip:{mine}") is None
    with pytest.raises(DatasetError, match="not found"):
        sources.point_to(str(tmp_path / "nothing.zip"))


def test_train_size_without_loading():
    assert sources.train_size("digits") == data.DATASETS["digits"].train_size == 1438
    assert sources.train_size("cifar10", subset=0.1) == 5000
    upload = save_upload("pets.zip", class_folders_zip(("cat", "dog"), per_class=3))
    assert sources.train_size(upload.dataset) == upload.train_size == 6


# ----------------------------------------------------------------------------
# Downloads from a local server
# ----------------------------------------------------------------------------


def test_download_reports_growing_progress_checks_the_md5_and_unpacks_in_torchvisions_layout(server, auglab_home):
    archive = cifar_archive()
    srv = server({"/mirror/cifar-10-python.tar.gz": archive})
    calls = []
    folder = sources.download("cifar10", lambda done, total: calls.append((done, total)), url=f"{srv.url}/mirror",
                              md5={"cifar-10-python.tar.gz": md5(archive)})
    root = auglab_home / "datasets"
    assert folder == root / "cifar-10-batches-py"
    assert data.has_torchvision_files("cifar10") and "cifar10" in data.available_datasets()
    assert resolve("cifar10").source == "torchvision files"
    # progress: from 0, growing, in several chunks, up to the total the server announced
    assert calls[0] == (0, len(archive)) and calls[-1] == (len(archive), len(archive))
    assert len(calls) > 3 and all(a[0] < b[0] for a, b in zip(calls[1:], calls[2:]))
    assert {total for _, total in calls} == {len(archive)}
    assert leftovers(root) == []  # no archive, no staging folder left


def test_the_size_comes_from_head_and_the_mirror_from_the_environment(server, monkeypatch):
    archive = cifar_archive(padding=1000)
    srv = server({"/cifar10/cifar-10-python.tar.gz": archive})
    monkeypatch.setenv(sources.DOWNLOAD_BASE_ENV, srv.url + "/")
    assert sources.download_size("cifar10") == len(archive)
    assert srv.requests == [("HEAD", "/cifar10/cifar-10-python.tar.gz")]
    sources.download("cifar10", md5={"cifar-10-python.tar.gz": md5(archive)})
    assert data.has_torchvision_files("cifar10")
    # without the variable and the override, torchvision's own URL and checksum
    monkeypatch.delenv(sources.DOWNLOAD_BASE_ENV)
    [file] = sources.remote_files("cifar10")
    cls = data.torchvision_dataset_class("cifar10")
    assert (file.urls, file.md5) == ((cls.url,), cls.tgz_md5)


def test_a_wrong_checksum_is_refused_and_nothing_is_installed(server, auglab_home):
    srv = server({"/m/cifar-10-python.tar.gz": cifar_archive(padding=1000)})
    with pytest.raises(DatasetError, match="does not match its checksum") as error:
        sources.download("cifar10", url=f"{srv.url}/m")  # torchvision's md5 for the real archive
    assert "was not used" in str(error.value)
    assert not data.has_torchvision_files("cifar10") and leftovers(auglab_home / "datasets") == []


def test_offline_or_an_http_error_says_what_to_do(server, auglab_home):
    with pytest.raises(DatasetError) as error:
        sources.download("cifar10", url=closed_port_url())
    message = str(error.value)
    assert "cannot be reached" in message and "offline" in message
    assert str(auglab_home / "datasets" / "cifar-10-batches-py") in message and "data_batch_1" in message
    assert "upload a zip of class folders" in message
    with pytest.raises(DatasetError, match="cannot be reached"):
        sources.download_size("cifar10", url=closed_port_url())
    srv = server({})
    with pytest.raises(DatasetError, match="answered 404"):
        sources.download("fashion_mnist", url=srv.url)
    with pytest.raises(DatasetError, match="not a URL"):
        sources.download("cifar10", url="nonsense")
    with pytest.raises(DatasetError, match="no torchvision download"):
        sources.download("photos")


def test_an_archive_that_is_not_torchvisions_is_refused(server, auglab_home):
    for archive, reason in (
        (cifar_archive(padding=10, extra={"../escape.txt": b"x"}), "unsafe entry"),
        (cifar_archive(padding=10, folder="other-folder"), "without data_batch_1"),
    ):
        srv = server({"/cifar-10-python.tar.gz": archive})
        with pytest.raises(DatasetError, match=reason):
            sources.download("cifar10", url=srv.url, md5={"cifar-10-python.tar.gz": md5(archive)})
        assert not data.has_torchvision_files("cifar10") and leftovers(auglab_home / "datasets") == []
    assert not (auglab_home / "escape.txt").exists()


def test_mnist_downloads_its_four_files_and_then_comes_before_the_digits(server):
    rng = np.random.default_rng(0)
    raw = {
        "train-images-idx3-ubyte": idx(rng.integers(0, 256, (30, 28, 28))),
        "train-labels-idx1-ubyte": idx(np.arange(30) % 10),
        "t10k-images-idx3-ubyte": idx(rng.integers(0, 256, (10, 28, 28))),
        "t10k-labels-idx1-ubyte": idx(np.arange(10)),
    }
    gz = {f"{name}.gz": gzip.compress(content) for name, content in raw.items()}
    srv = server({f"/mnist/{name}": content for name, content in gz.items()})
    calls = []
    folder = sources.download("mnist", lambda *a: calls.append(a), url=f"{srv.url}/mnist",
                              md5={name: md5(content) for name, content in gz.items()})
    total = sum(len(c) for c in gz.values())
    assert calls[-1] == (total, total) and all(t == total for _, t in calls)  # one total over the four files
    assert sorted(p.name for p in folder.iterdir()) == sorted(raw)
    assert resolve("mnist") == sources.Resolved("mnist", "mnist", "torchvision files")
    bundle = load_dataset("mnist")
    assert bundle.train_x.shape == (30, 1, 28, 28) and bundle.test_y.tolist() == list(range(10))


# ----------------------------------------------------------------------------
# A training budget for a small dataset
# ----------------------------------------------------------------------------


def test_suggest_budget_gives_small_sets_a_few_hundred_steps_and_leaves_large_ones_alone():
    batch, epochs, note = suggest_budget(245, 128, 2)
    assert (batch, epochs) == (16, 20) and (245 // batch) * epochs >= sources.MIN_STEPS
    assert "245 training images" in note and "2 optimiser steps" in note and "300 in all" in note
    assert suggest_budget(1438, 64, 2)[:2] == (64, 14)  # the digits: the batch stays, the epochs grow
    assert suggest_budget(50_000, 64, 2) == (64, 2, "")  # CIFAR-10
    assert suggest_budget(500, 16, 30) == (16, 30, "")  # already 930 steps
    assert suggest_budget(1000, 64, 50)[:2] == (64, 50)  # never fewer epochs than asked
    assert suggest_budget(300, 8, 2)[:2] == (8, 9)  # never a larger batch than asked
    batch, epochs, note = suggest_budget(20, 64, 2)
    assert (batch, epochs) == (8, sources.MAX_EPOCHS) and "capped" in note  # stays a short run
    with pytest.raises(ValueError):
        suggest_budget(0, 64, 2)


def stripes_zip(n_per_class: int, size: int = 16) -> bytes:
    """Two classes, horizontal and vertical stripes, in random colours, periods and phases under noise."""
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    coords = np.arange(size)
    with zipfile.ZipFile(buffer, "w") as zf:
        for c, name in enumerate(("horizontal", "vertical")):
            for i in range(n_per_class):
                period = rng.integers(3, 6)
                wave = ((coords + rng.integers(0, period)) // max(1, period // 2)) % 2
                mask = np.broadcast_to(wave[:, None] if c == 0 else wave[None, :], (size, size))
                base, contrast = rng.integers(40, 216, 3), rng.integers(-60, 61, 3)
                pixels = np.where(mask[..., None] == 1, base + contrast, base - contrast) + rng.normal(0, 40, (size, size, 3))
                zf.writestr(f"{name}/{i}.png", png(pixels.clip(0, 255).astype(np.uint8)))
    return buffer.getvalue()


def _tiny(epochs: int, batch: int, dataset: str) -> float:
    from core.cli import run

    cfg = {"data": {"dataset": dataset}, "model": {"name": "fastcnn", "options": {"width": 0.25}},
           "run": {"epochs": epochs, "batch_size": batch, "threads": 1, "device": "cpu"}}
    record = store.get_run(run(cfg))
    assert record.status == "finished", record.message
    return record.summary["final"]["test_acc"]


def test_a_small_two_class_upload_learns_beyond_chance_with_the_suggested_budget():
    upload = save_upload("stripes.zip", stripes_zip(153))  # 244 train / 62 test
    assert upload.train_size == 244
    batch, epochs, _ = suggest_budget(upload.train_size, 128, 2)
    assert (batch, epochs) == (16, 20)
    suggested = _tiny(epochs, batch, upload.dataset)
    assert suggested >= 0.9, suggested
    # what the fix is for: 2 epochs of 128 are 2 steps, and the same run stays at chance
    default = _tiny(2, 128, upload.dataset)
    assert default <= 0.65, default
