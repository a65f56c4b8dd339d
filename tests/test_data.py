"""Datasets: generated shapes, your own images in zips and folders, torchvision sets offline."""
from __future__ import annotations

import functools
import hashlib
import io
import os
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import png_header_only
from core import data
from core.data import DatasetBundle, DatasetError, embedded, folders, generate_shapes, load, load_dataset


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("AUGLAB_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


# ----------------------------------------------------------------------------
# Building tiny image folders and zips
# ----------------------------------------------------------------------------


def class_image(class_index: int, i: int, size: int, grayscale: bool = False) -> np.ndarray:
    """A distinct, reproducible image: a class colour plus per-image noise ([H, W] or [H, W, 3])."""
    rng = np.random.default_rng(1000 * class_index + i)
    base = np.array([40 + 60 * (class_index % 4), 30 * class_index % 256, 255 - 25 * class_index], dtype=np.int16)
    pixels = base + rng.integers(-20, 21, size=(size, size, 3))
    pixels = pixels.clip(0, 255).astype(np.uint8)
    return pixels[..., 0] if grayscale else pixels


def png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def imagefolder_files(
    classes, per_class: int, size: int, split: bool = True, *, wrap: str | None = None, grayscale: bool = False
) -> dict[str, bytes]:
    """relative path -> PNG bytes. Split: train/ gets per_class images a class, test/ half as many."""
    files = {}
    prefix = f"{wrap}/" if wrap else ""
    for c, name in enumerate(classes):
        if split:
            counts = {"train": per_class, "test": max(1, per_class // 2)}
        else:
            counts = {"": per_class}
        offset = 0
        for split_dir, count in counts.items():
            for i in range(count):
                folder = f"{prefix}{split_dir + '/' if split_dir else ''}{name}"
                files[f"{folder}/{i:04d}.png"] = png_bytes(class_image(c, offset + i, size, grayscale))
            offset += count
    return files


def write_zip(path: Path, files: dict[str, bytes], dirs: tuple[str, ...] = ()) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for d in dirs:
            zf.writestr(zipfile.ZipInfo(d.rstrip("/") + "/"), b"")
        for name, content in files.items():
            zf.writestr(name, content)
    return path


def make_imagefolder_zip(path, classes, per_class, size, split=True, **kwargs) -> Path:
    """A tiny zip in ImageFolder layout (see imagefolder_files), for tests."""
    return write_zip(Path(path), imagefolder_files(classes, per_class, size, split, **kwargs))


def write_folder(root: Path, files: dict[str, bytes]) -> Path:
    for name, content in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    return root


def image_digests(x: torch.Tensor) -> list[str]:
    return sorted(hashlib.sha1(img.numpy().tobytes()).hexdigest() for img in x)


CLASSES = ("ant", "bee", "cat")


@functools.lru_cache(maxsize=None)
def shapes(**kwargs) -> DatasetBundle:
    """load_dataset("shapes", ...) once per argument set: several tests compare the same bundles."""
    return load_dataset("shapes", **kwargs)


# ----------------------------------------------------------------------------
# Shapes
# ----------------------------------------------------------------------------


def test_shapes_is_deterministic_balanced_and_described_correctly():
    a = load_dataset("shapes", seed=3)
    b = load_dataset("shapes", seed=3)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    assert not torch.equal(a.train_x, shapes().train_x)
    assert a.train_x.shape == (embedded.SHAPES_TRAIN, 3, 32, 32) and a.train_x.dtype == torch.uint8
    assert a.test_x.shape == (embedded.SHAPES_TEST, 3, 32, 32)
    assert (a.in_channels, a.image_size, a.num_classes) == (3, 32, 10)
    table = a.overview()
    assert list(table["class"]) == list(data.SHAPE_CLASSES)
    assert set(table["train"]) == {embedded.SHAPES_TRAIN // 10} and set(table["test"]) == {embedded.SHAPES_TEST // 10}
    # Reference statistics straight from a float copy
    f = a.train_x.double() / 255
    assert a.mean == pytest.approx(f.mean(dim=(0, 2, 3)).tolist(), abs=1e-5)
    assert a.std == pytest.approx(f.std(dim=(0, 2, 3), unbiased=False).tolist(), abs=1e-5)


def test_shapes_render_at_any_size_and_classes_differ():
    small = load_dataset("shapes", image_size=16)
    assert small.train_x.shape[1:] == (3, 16, 16)
    sample = generate_shapes(500, seed=0)
    # Mean images per class differ: the classes are not the same picture under another label
    means = torch.stack([sample.x[sample.y == c].float().mean(0) for c in range(10)])
    distances = torch.cdist(means.flatten(1), means.flatten(1))
    assert distances[~torch.eye(10, dtype=torch.bool)].min() > 50
    # The object is drawn where the metadata says: at the centre of a filled shape (circle,
    # square, diamond) the pixel differs from the far corner of the image, which is background
    filled = (sample.y == 0) | (sample.y == 1) | (sample.y == 6)
    cx, cy = sample.centres[filled].round().long().clamp(0, 31).unbind(1)
    imgs = sample.x[filled].float()
    at_centre = imgs[torch.arange(len(imgs)), :, cy, cx]
    far_x = torch.where(cx < 16, 31, 0)
    far_y = torch.where(cy < 16, 31, 0)
    at_corner = imgs[torch.arange(len(imgs)), :, far_y, far_x]
    assert ((at_centre - at_corner).abs().amax(dim=1) > 25).float().mean() > 0.9


def test_left_variant_keeps_train_objects_in_the_left_half_only():
    size = 32
    left = generate_shapes(2000, seed=1, image_size=size, variant="left")
    plain = generate_shapes(2000, seed=1, image_size=size)
    assert (left.centres[:, 0] <= size / 2).all()
    assert (plain.centres[:, 0] > size / 2).float().mean() > 0.3
    assert (left.centres[:, 0] >= left.radii - 1e-4).all()  # still inside the frame

    narrow = load_dataset("shapes", variant="left")
    full = shapes()
    assert torch.equal(narrow.test_x, full.test_x)  # a variant narrows train only
    assert not torch.equal(narrow.train_x, full.train_x)
    assert "left" in narrow.note


def test_few_colours_variant_restricts_train_hues():
    few = generate_shapes(2000, seed=2, variant="few_colours")
    plain = generate_shapes(2000, seed=2)

    def in_bands(h: torch.Tensor) -> torch.Tensor:
        inside = torch.zeros_like(h, dtype=torch.bool)
        for lo, hi in embedded.FEW_COLOUR_BANDS:
            inside |= ((h - lo) % 1.0) <= (hi - lo) + 1e-6
        return inside

    assert in_bands(few.hues).all()
    assert in_bands(plain.hues).float().mean() < 0.3  # the bands cover a fifth of the hue circle


def test_unknown_variant_and_bad_arguments_are_clear():
    with pytest.raises(DatasetError, match="variant"):
        load_dataset("shapes", variant="upside_down")
    with pytest.raises(DatasetError, match="only to the 'shapes'"):
        load_dataset("cifar10", variant="left")
    with pytest.raises(DatasetError, match="unknown dataset"):
        load_dataset("imagenet")
    with pytest.raises(DatasetError, match="subset"):
        load_dataset("shapes", subset=0)
    with pytest.raises(DatasetError, match="subset"):
        load_dataset("shapes", subset=1.5)
    with pytest.raises(DatasetError, match="image_size"):
        load_dataset("shapes", image_size=300)
    with pytest.raises(DatasetError, match="val_ratio"):
        load_dataset("shapes", val_ratio=1.0)


def test_subset_is_stratified_seeded_and_noted():
    a = load_dataset("shapes", subset=0.1)
    b = load_dataset("shapes", subset=0.1)
    c = load_dataset("shapes", subset=0.1, seed=6)
    full = shapes()
    assert torch.bincount(a.train_y).tolist() == [embedded.SHAPES_TRAIN // 100] * 10
    assert torch.equal(a.train_x, b.train_x)
    assert not torch.equal(a.train_x, c.train_x)
    assert torch.equal(a.test_x, full.test_x)  # a small test split stays whole
    assert "subset: 10% of train" in a.note
    # every picked image really comes from the full train split
    assert set(image_digests(a.train_x)) <= set(image_digests(full.train_x))


def test_subset_also_thins_a_huge_test_split(monkeypatch):
    monkeypatch.setattr(load, "FULL_TEST_LIMIT", 500)
    b = load_dataset("shapes", subset=0.1)
    assert torch.bincount(b.test_y).tolist() == [embedded.SHAPES_TEST // 100] * 10
    assert set(image_digests(b.test_x)) <= set(image_digests(shapes().test_x))
    assert "of test" in b.note


def test_bundle_rejects_inconsistent_tensors():
    x = torch.zeros(4, 3, 8, 8, dtype=torch.uint8)
    y = torch.zeros(4, dtype=torch.int64)
    with pytest.raises(DatasetError, match="uint8"):
        DatasetBundle("t", x.float(), y, x, y, ("a",), (0.0,), (1.0,))
    with pytest.raises(DatasetError, match="int64"):
        DatasetBundle("t", x, y[:3], x, y, ("a",), (0.0,), (1.0,))
    with pytest.raises(DatasetError, match="test images"):
        DatasetBundle("t", x, y, x[:, :1], y, ("a",), (0.0,), (1.0,))


# ----------------------------------------------------------------------------
# Your own images: zip and folder
# ----------------------------------------------------------------------------


def test_split_zip_inside_a_wrapping_folder_loads_exact_pixels(tmp_path):
    files = imagefolder_files(CLASSES, per_class=4, size=12, wrap="pets")
    files["pets/LICENSE"] = b"CC-BY"
    files["__MACOSX/pets/._0000.png"] = b"resource fork"
    files["pets/train/ant/.DS_Store"] = b"junk"
    path = write_zip(tmp_path / "pets.zip", files)

    b = load_dataset(f"zip:{path}")
    assert b.classes == CLASSES
    assert b.train_x.shape == (12, 3, 12, 12) and b.test_x.shape == (6, 3, 12, 12)
    assert torch.bincount(b.train_y).tolist() == [4, 4, 4] and torch.bincount(b.test_y).tolist() == [2, 2, 2]
    # Oracle: the very images that were written, in file-name order within each class
    for c in range(3):
        expected_train = np.stack([class_image(c, i, 12) for i in range(4)])
        expected_test = np.stack([class_image(c, 4 + i, 12) for i in range(2)])
        assert np.array_equal(b.train_x[b.train_y == c].permute(0, 2, 3, 1).numpy(), expected_train)
        assert np.array_equal(b.test_x[b.test_y == c].permute(0, 2, 3, 1).numpy(), expected_test)
    assert "skipped" not in b.note and "held out" not in b.note


def test_unsplit_zip_is_split_stratified_and_seeded(tmp_path):
    path = make_imagefolder_zip(tmp_path / "flat.zip", CLASSES, per_class=10, size=8, split=False)
    a = load_dataset(f"zip:{path}", val_ratio=0.3, seed=1)
    again = load_dataset(f"zip:{path}", val_ratio=0.3, seed=1)
    other = load_dataset(f"zip:{path}", val_ratio=0.3, seed=2)
    assert torch.bincount(a.test_y).tolist() == [3, 3, 3] and torch.bincount(a.train_y).tolist() == [7, 7, 7]
    assert torch.equal(a.test_x, again.test_x) and torch.equal(a.train_x, again.train_x)
    assert not torch.equal(a.test_x, other.test_x)
    # No image lost or duplicated by the split
    everything = np.stack([class_image(c, i, 8) for c in range(3) for i in range(10)])
    written = torch.from_numpy(everything).permute(0, 3, 1, 2)
    assert image_digests(torch.cat([a.train_x, a.test_x])) == image_digests(written)
    assert "30% of each class held out" in a.note


def test_folder_gives_the_same_tensors_as_the_zip(tmp_path):
    files = imagefolder_files(CLASSES, per_class=3, size=10, split=False)
    from_zip = load_dataset(f"zip:{write_zip(tmp_path / 'd.zip', files)}")
    from_folder = load_dataset(f"folder:{write_folder(tmp_path / 'd', files)}")
    assert torch.equal(from_zip.train_x, from_folder.train_x) and torch.equal(from_zip.test_y, from_folder.test_y)
    assert from_zip.classes == from_folder.classes


def test_grayscale_images_load_as_one_channel_and_mixed_as_three(tmp_path):
    gray = load_dataset(f"zip:{make_imagefolder_zip(tmp_path / 'g.zip', CLASSES, 2, 8, grayscale=True)}")
    assert gray.in_channels == 1 and len(gray.mean) == 1
    assert np.array_equal(gray.train_x[0, 0].numpy(), class_image(0, 0, 8, grayscale=True))

    files = imagefolder_files(CLASSES, 2, 8)
    files["train/ant/0000.png"] = png_bytes(class_image(0, 0, 8, grayscale=True))
    mixed = load_dataset(f"zip:{write_zip(tmp_path / 'm.zip', files)}")
    assert mixed.in_channels == 3
    first = mixed.train_x[0]
    assert torch.equal(first[0], first[1]) and torch.equal(first[1], first[2])  # gray copied to R, G, B


def test_images_are_resized_automatically_or_on_request(tmp_path):
    big = make_imagefolder_zip(tmp_path / "big.zip", CLASSES, 2, 100)
    assert load_dataset(f"zip:{big}").image_size == 64  # photos larger than 64 px -> 64
    mid = make_imagefolder_zip(tmp_path / "mid.zip", CLASSES, 2, 48)
    assert load_dataset(f"zip:{mid}").image_size == 32
    small = make_imagefolder_zip(tmp_path / "small.zip", CLASSES, 2, 20)
    assert load_dataset(f"zip:{small}").image_size == 20  # small images keep their size

    # A solid colour stays that colour at any size, and a wide image is centre-cropped, not squashed
    files = {
        f"{c}/{i}.png": png_bytes(np.full((30, 60, 3), 50 * k, np.uint8)) for k, c in enumerate(CLASSES) for i in range(2)
    }
    wide = np.zeros((30, 60, 3), np.uint8)
    wide[:, 15:45] = 200  # the centre square is bright, the sides are black
    files["ant/0.png"] = png_bytes(wide)
    b = load_dataset(f"zip:{write_zip(tmp_path / 'wide.zip', files)}", image_size=16, val_ratio=0.5)
    everything = torch.cat([b.train_x, b.test_x])
    labels = torch.cat([b.train_y, b.test_y])
    assert b.image_size == 16
    assert (everything[labels == 1] == 50).all() and (everything[labels == 2] == 100).all()
    assert (everything[labels == 0].amax(dim=(1, 2, 3)) == 200).any()
    # Cropped: the bright centre fills the width (squashed, the outer 4 columns would be black).
    # The outermost column is blended with its neighbours outside the crop, so it is left out.
    assert ((everything[labels == 0][..., 1:-1] == 200).flatten(1).all(dim=1)).any()


def test_second_load_comes_from_the_cache_and_a_changed_zip_is_decoded_again(tmp_path, monkeypatch, isolated_home):
    path = make_imagefolder_zip(tmp_path / "c.zip", CLASSES, 3, 8)
    first = load_dataset(f"zip:{path}")
    cached = list((isolated_home / "cache").glob("*.pt"))
    assert len(cached) == 1

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again although the cache was valid")

    monkeypatch.setattr(folders, "_decode_source", no_decoding)
    second = load_dataset(f"zip:{path}")
    assert torch.equal(first.train_x, second.train_x) and first.note == second.note

    make_imagefolder_zip(path, CLASSES, 5, 8)  # new content, new mtime and size
    os.utime(path, ns=(1, 1))
    with pytest.raises(AssertionError, match="decoded again"):
        load_dataset(f"zip:{path}")
    monkeypatch.undo()
    monkeypatch.setenv("AUGLAB_HOME", str(isolated_home))
    assert torch.bincount(load_dataset(f"zip:{path}").train_y).tolist() == [5, 5, 5]
    assert len(list((isolated_home / "cache").glob("*.pt"))) == 1  # the stale cache file was replaced


def test_unreadable_files_are_skipped_and_reported(tmp_path):
    files = imagefolder_files(CLASSES, 3, 8)
    files["train/ant/broken.png"] = b"\x89PNG\r\n\x1a\n this is not really a png"
    files["train/bee/notes.txt"] = b"hello"
    files["train/cat/0000.png"] = png_bytes(class_image(2, 0, 8))[:40]  # truncated
    # Just above PIL's limit, where PIL itself would only warn and go on to allocate ~100 MB
    files["train/cat/bomb.png"] = png_header_only(10_000, 9_000)
    b = load_dataset(f"zip:{write_zip(tmp_path / 's.zip', files)}")
    assert torch.bincount(b.train_y).tolist() == [3, 3, 2]
    assert "skipped 4 file(s)" in b.note


def _bad_zip_cases(tmp_path: Path):
    good = imagefolder_files(CLASSES, 2, 8)
    not_zip = tmp_path / "not.zip"
    not_zip.write_text("just some text")
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(write_zip(tmp_path / "full.zip", good).read_bytes()[:300])
    escaping = tmp_path / "escape.zip"
    write_zip(escaping, {**good, "../evil/0.png": png_bytes(class_image(0, 0, 8))})
    absolute = tmp_path / "absolute.zip"
    with zipfile.ZipFile(absolute, "w") as zf:
        zf.writestr(zipfile.ZipInfo("/etc/cron.d/0.png"), b"x")
    top_level_only = write_zip(tmp_path / "flat.zip", {f"{i}.png": png_bytes(class_image(0, i, 8)) for i in range(3)})
    one_class = write_zip(tmp_path / "one.zip", imagefolder_files(("ant",), 3, 8, split=False))
    empty_class = write_zip(tmp_path / "empty.zip", imagefolder_files(CLASSES, 2, 8, split=False), dirs=("dog/",))
    text_class = write_zip(
        tmp_path / "text.zip", {**imagefolder_files(CLASSES, 2, 8, split=False), "dog/readme.txt": b"hi"}
    )
    corrupt_class = write_zip(
        tmp_path / "corrupt.zip", {**imagefolder_files(CLASSES[:2], 2, 8, split=False), "cat/0.png": b"garbage"}
    )
    test_only_class = write_zip(tmp_path / "extra.zip", {**good, "test/dog/0.png": png_bytes(class_image(3, 0, 8))})
    train_only = {name: content for name, content in good.items() if name.startswith("train/")}
    empty_test = write_zip(tmp_path / "empty_test.zip", train_only, dirs=("test/",))
    singles = write_zip(tmp_path / "singles.zip", imagefolder_files(CLASSES, 1, 8, split=False))
    return [
        (not_zip, {}, "not a zip file or is damaged"),
        (truncated, {}, "not a zip file or is damaged"),
        (escaping, {}, "unsafe path"),
        (absolute, {}, "unsafe path"),
        (write_zip(tmp_path / "big.zip", good), {"max_bytes": 100}, "would unpack to .* more than the limit"),
        (write_zip(tmp_path / "many.zip", good), {"max_files": 5}, "more than 5 files"),
        (top_level_only, {}, "no class folders"),
        (one_class, {}, "only one class folder"),
        (empty_class, {}, "'dog' is empty"),
        (text_class, {}, "'dog' has no image files"),
        (corrupt_class, {}, "no readable images left in class 'cat'"),
        (test_only_class, {}, r"class folder\(s\) \['dog'\] that train/ lacks"),
        (empty_test, {}, "test/ holds no class folders"),
        (singles, {}, "every class has a single image"),
        (tmp_path / "missing.zip", {}, "zip file not found"),
    ]


def test_every_bad_zip_gets_its_own_clear_message(tmp_path):
    for path, kwargs, message in _bad_zip_cases(tmp_path):
        with pytest.raises(DatasetError, match=message):
            load_dataset(f"zip:{path}", **kwargs)


def test_bad_folders_are_reported_too(tmp_path):
    with pytest.raises(DatasetError, match="folder not found"):
        load_dataset(f"folder:{tmp_path / 'nope'}")
    one = write_folder(tmp_path / "one", imagefolder_files(("ant",), 2, 8, split=False))
    with pytest.raises(DatasetError, match="only one class"):
        load_dataset(f"folder:{one}")
    empty = write_folder(tmp_path / "empty", imagefolder_files(CLASSES, 2, 8, split=False))
    (empty / "dog").mkdir()
    with pytest.raises(DatasetError, match="'dog' is empty"):
        load_dataset(f"folder:{empty}")


# ----------------------------------------------------------------------------
# Digits: real handwriting inside scikit-learn
# ----------------------------------------------------------------------------


def test_digits_are_sklearns_real_1797_images_split_stratified_and_seeded():
    from sklearn.datasets import load_digits

    reference = load_digits()
    b = load_dataset("digits")
    assert b.train_x.dtype == torch.uint8 and b.train_x.shape[1:] == (1, 8, 8)
    assert len(b.train_y) + len(b.test_y) == 1797 and len(b.train_y) == data.DATASETS["digits"].train_size
    assert b.classes == tuple("0123456789") and b.num_classes == 10
    # the same images, 0..16 stretched to 0..255, every one in exactly one split
    expected = np.rint(reference.images * 255 / 16).astype(np.uint8)
    assert image_digests(torch.cat([b.train_x, b.test_x])) == image_digests(torch.from_numpy(expected).unsqueeze(1))
    assert int(b.train_x.max()) == 255 and int(b.train_x.min()) == 0
    # 20% of each class held out
    counts = np.bincount(reference.target)
    assert b.test_y.bincount().tolist() == [round(n * embedded.DIGITS_TEST_RATIO) for n in counts]
    assert "20% of each class held out" in b.note
    again, other = load_dataset("digits"), load_dataset("digits", seed=1)
    assert torch.equal(again.test_x, b.test_x) and not torch.equal(other.test_x, b.test_x)


def test_digits_resize_to_mnist_size_and_work_in_the_config_and_the_cli(capsys):
    from core.cli import main
    from core.training.config import TrainConfig

    b = load_dataset("digits", image_size=28, subset=0.5)
    assert b.train_x.shape[1:] == (1, 28, 28) and "resized from 8x8 to 28x28" in b.note
    assert len(b.train_y) == pytest.approx(data.DATASETS["digits"].train_size / 2, abs=5)
    assert "digits" in data.available_datasets()
    assert TrainConfig.from_dict({"data": {"dataset": "digits", "image_size": 28}}).data.dataset == "digits"
    assert main(["--print-config", "--dataset", "digits"]) == 0
    assert TrainConfig.from_json(capsys.readouterr().out).data.dataset == "digits"
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "digits" in capsys.readouterr().out


def test_digits_without_scikit_learn_say_how_to_get_it(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_sklearn(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise ImportError("No module named 'sklearn'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    with pytest.raises(DatasetError, match="pip install scikit-learn"):
        load_dataset("digits")


def test_describe_images_reads_the_layout_without_decoding(tmp_path, monkeypatch):
    path = make_imagefolder_zip(tmp_path / "d.zip", CLASSES, per_class=4, size=20, wrap="top")
    monkeypatch.setattr(folders, "_decode_all", lambda *a: pytest.fail("decoded"))
    overview = data.describe_images(f"zip:{path}")
    assert overview == data.ImagesOverview(classes=CLASSES, train_files=12, test_files=6, split=True, typical_size=20)
    folder = write_folder(tmp_path / "f", imagefolder_files(CLASSES, per_class=3, size=12, split=False))
    assert data.describe_images(f"folder:{folder}") == data.ImagesOverview(CLASSES, 9, 0, False, 12)
    with pytest.raises(DatasetError, match="only one class"):
        data.describe_images(f"folder:{write_folder(tmp_path / 'one', imagefolder_files(['a'], 2, 8, split=False))}")
    with pytest.raises(DatasetError, match="not a 'folder:<path>'"):
        data.describe_images("shapes")


# ----------------------------------------------------------------------------
# torchvision datasets, offline
# ----------------------------------------------------------------------------


def test_missing_torchvision_files_say_where_to_put_them(isolated_home):
    with pytest.raises(DatasetError) as err:
        load_dataset("cifar10", allow_download=False)
    message = str(err.value)
    assert str(isolated_home / "datasets" / "cifar-10-batches-py") in message
    assert "data_batch_1" in message and "zip" in message
    with pytest.raises(DatasetError, match="FashionMNIST/raw"):
        load_dataset("fashion_mnist")
    assert data.available_datasets() == ["shapes", "digits"]  # the two that need no files
    assert data.available_datasets(allow_download=True) == list(data.DATASETS)


def _write_idx(path: Path, array: np.ndarray) -> None:
    """The MNIST file format: magic (dtype 0x08 = uint8, number of dims), sizes, raw bytes."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_mnist_files_in_torchvision_layout_load_as_uint8(isolated_home):
    raw = isolated_home / "datasets" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    train_images, test_images = rng.integers(0, 256, (20, 28, 28)), rng.integers(0, 256, (10, 28, 28))
    _write_idx(raw / "train-images-idx3-ubyte", train_images)
    _write_idx(raw / "train-labels-idx1-ubyte", np.arange(20) % 10)
    _write_idx(raw / "t10k-images-idx3-ubyte", test_images)
    _write_idx(raw / "t10k-labels-idx1-ubyte", np.arange(10))
    assert "mnist" in data.available_datasets()

    b = load_dataset("mnist")
    assert b.train_x.shape == (20, 1, 28, 28) and b.train_x.dtype == torch.uint8
    assert np.array_equal(b.train_x[:, 0].numpy(), train_images) and b.test_y.tolist() == list(range(10))
    assert b.num_classes == 10 and b.classes[0].startswith("0")
    resized = load_dataset("mnist", image_size=32)
    assert resized.train_x.shape == (20, 1, 32, 32) and "resized" in resized.note


# ----------------------------------------------------------------------------
# Real data (optional)
# ----------------------------------------------------------------------------

REAL_CIFAR = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10.zip"


@pytest.mark.skipif(
    not REAL_CIFAR.is_file() or os.environ.get("AUGLAB_REAL_DATA") != "1",
    reason="set AUGLAB_REAL_DATA=1 with shared/data/cifar10.zip present (decodes 60,000 images)",
)
def test_real_cifar10_zip_with_wrapping_folder():
    b = load_dataset(f"zip:{REAL_CIFAR}", subset=0.02)
    assert b.classes[:3] == ("airplane", "automobile", "bird")
    assert torch.bincount(b.train_y).tolist() == [100] * 10
    assert b.test_x.shape == (10_000, 3, 32, 32)
    assert b.mean == pytest.approx((0.49, 0.48, 0.45), abs=0.03)


def test_a_zip_member_that_unpacks_to_more_than_an_image_may_be_is_refused_before_it_is_read(tmp_path, monkeypatch):
    files = imagefolder_files(CLASSES, 2, 8, split=False)
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, content in files.items():
            z.writestr(name, content)
        z.writestr("ant/huge.png", b"\0" * (folders.MAX_MEMBER_BYTES + 1))  # ~64 KB in the zip
    reads = []
    monkeypatch.setattr(folders._Source, "read", lambda self, rel: reads.append(rel))
    with pytest.raises(DatasetError, match=r"ant/huge.png would unpack to 67 MB, more than the 67 MB an image file may be"):
        load_dataset(f"zip:{path}")
    assert reads == []  # refused from the table of contents


def test_reading_a_member_holds_at_most_the_limit_in_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(folders, "MAX_MEMBER_BYTES", 1000)
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("ant/a.png", b"x" * 5000)
    src = folders._Source.__new__(folders._Source)  # a member that grew past what the index allowed
    src.path, src.zip, src.stored_name = path, zipfile.ZipFile(path), {"ant/a.png": "ant/a.png"}
    with pytest.raises(DatasetError, match="larger than the 0 MB an image file may be"):
        src.read("ant/a.png")
