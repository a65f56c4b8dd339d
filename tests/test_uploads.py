"""Uploaded dataset zips: stored by content hash, validated by loading, rejected with a message."""
import io
import struct
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from core.data import DatasetError, load_dataset
from core.data.uploads import list_uploads, save_upload, uploads_dir


def png(value: int, size: int = 12) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def make_zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def good_zip() -> bytes:
    # dark squares and light squares: two classes of four images each, in a wrapping folder
    return make_zip({f"pets/{cls}/{i}.png": png(base + 10 * i) for cls, base in (("dark", 20), ("light", 200)) for i in range(4)})


def declaring_huge_size(data: bytes, size: int = 0xFFFF0000) -> bytes:
    """The zip with its first central-directory entry claiming `size` bytes uncompressed (a zip bomb's header)."""
    out = bytearray(data)
    at = out.index(b"PK\x01\x02")
    out[at + 24 : at + 28] = struct.pack("<I", size)  # uncompressed size field of the entry
    return bytes(out)


BAD_ZIPS = {
    "no class folders": (make_zip({"a.png": png(1), "b.png": png(2)}), "no class folders"),
    "one class": (make_zip({"cat/a.png": png(1), "cat/b.png": png(2)}), "only one class"),
    "an empty class folder": (make_zip({"cat/a.png": png(1), "dog/": b""}), "'dog' is empty"),
    "no images in a class": (make_zip({"cat/a.png": png(1), "dog/notes.txt": b"hello"}), "'dog' has no image files"),
    "a path escaping the folder": (make_zip({"../cat/a.png": png(1), "dog/b.png": png(2)}), "unsafe path"),
    "a huge decompressed size": (declaring_huge_size(good_zip()), "MB"),
    "not a zip": (b"just some text, not a zip archive", "not a zip file"),
}


def test_a_good_zip_is_stored_by_hash_and_loads_as_a_dataset():
    data = good_zip()
    upload = save_upload("pets.zip", data)
    assert upload.name == "pets.zip"
    assert upload.classes == ("dark", "light")
    assert upload.train_size + upload.test_size == 8 and upload.test_size == 2  # 20% of each class held out
    assert upload.path.parent == uploads_dir() and upload.path.read_bytes() == data
    bundle = load_dataset(upload.dataset)  # what a run with data.dataset = upload.dataset trains on
    assert bundle.classes == ("dark", "light")
    assert torch.equal(bundle.train_y.bincount(), torch.tensor([3, 3]))
    # the same bytes again: one file, the same upload
    again = save_upload("renamed.zip", data)
    assert again.sha == upload.sha and len(list(uploads_dir().glob("*.zip"))) == 1
    assert [u.sha for u in list_uploads()] == [upload.sha]


@pytest.mark.parametrize("case", list(BAD_ZIPS))
def test_a_zip_that_is_not_a_dataset_is_rejected_with_its_reason(case):
    data, reason = BAD_ZIPS[case]
    with pytest.raises(DatasetError, match=reason) as error:
        save_upload("mine.zip", data)
    # the message names the file as the user knows it, and nothing is kept
    assert "mine.zip" in str(error.value)
    assert not list(uploads_dir().glob("*.zip")) and list_uploads() == []


def test_the_zip_size_limit():
    with pytest.raises(DatasetError, match="limited to"):
        save_upload("big.zip", good_zip(), max_bytes=100)
    with pytest.raises(DatasetError, match="empty"):
        save_upload("empty.zip", b"")
    assert not list(uploads_dir().glob("*.zip"))


def test_non_images_next_to_images_are_skipped_and_said():
    files = {f"{cls}/{i}.png": png(40 * i + (0 if cls == "a" else 120)) for cls in ("a", "b") for i in range(3)}
    upload = save_upload("mixed.zip", make_zip({**files, "a/readme.txt": b"notes"}))
    assert "skipped 1 file" in upload.note and "readme.txt" in upload.note


# ---- the name a run on an upload gets -------------------------------------------------------------


def test_a_run_on_an_upload_is_named_after_the_upload_not_its_stored_path(tmp_path):
    from core.cli import main
    from core.data.uploads import dataset_title
    from core.runs import store
    from core.training.config import TrainConfig

    upload = save_upload("pets.zip", good_zip())
    cfg = TrainConfig.from_dict({"data": {"dataset": upload.dataset}})
    assert store.get_run(store.create_run(cfg)).name == "fastcnn on pets.zip"
    assert store.get_run(store.create_run(TrainConfig())).name == "fastcnn on shapes"
    assert store.get_run(store.create_run(cfg, "mine")).name == "mine"
    assert dataset_title(f"zip:{tmp_path}/cifar10.zip") == "cifar10.zip"
    assert dataset_title(f"folder:{tmp_path}/flowers/") == "flowers"
    # the CLI names its runs the same way
    quick = ["--epochs", "1", "--batch-size", "4", "--set", "model.options.width=0.25", "--set", "run.threads=1", "--quiet"]
    assert main(["--dataset", upload.dataset, *quick]) == 0
    assert store.list_runs()["name"].iloc[0] == "fastcnn on pets.zip"


def test_an_upload_with_cifar10_class_names_is_registered_as_cifar10_even_when_uploaded_again():
    from core.data import sources

    names = sources.CIFAR10_CLASSES
    data = make_zip({f"c/{cls}/{i}.png": png(20 * k + i, size=32) for k, cls in enumerate(names) for i in range(2)})
    upload = save_upload("cifar-mini.zip", data)
    assert sources.registered("cifar10") == [upload.dataset]
    sources.unregister("cifar10", upload.dataset)
    save_upload("cifar-mini.zip", data)  # the same bytes: registered again, once
    assert sources.registered("cifar10") == [upload.dataset]
    assert sources.resolve("cifar10").source == "your upload cifar-mini.zip"


def test_the_apps_upload_limit_is_set_explicitly_and_matches_cores_check():
    import subprocess
    import sys
    import tomllib

    from conftest import ROOT
    from core.data.uploads import MAX_UPLOAD_BYTES

    configured = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["server"]["maxUploadSize"]
    assert configured * 1024**2 == MAX_UPLOAD_BYTES
    # and Streamlit, started in the project's folder as the README says, reads it
    read = subprocess.run([sys.executable, "-c", "import streamlit.config as c; print(c.get_option('server.maxUploadSize'))"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60, check=True).stdout.split()[-1]
    assert int(read) == configured
