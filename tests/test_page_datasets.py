"""The Train page's real datasets (pages/dataset_picker.py) through AppTest: where each kind comes from,
"use this dataset as", downloads from a local server with their size, the offline message, and
the training budget a small dataset gets."""
import hashlib
import io
import zipfile

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest
from test_sources import Server, cifar_archive, class_folders_zip, closed_port_url

from conftest import open_train_page, run
from core import data
from core.data import sources

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def at():
    return open_train_page()


def rows(app: AppTest) -> dict[str, str]:
    """Each kind's row in the panel: label -> where it comes from."""
    found = {}
    for md in app.markdown:
        for kind in sources.KINDS.values():
            if f"**{kind.label}**:" in md.value:
                found[kind.label] = md.value.split(f"**{kind.label}**:", 1)[1].strip()
    return found


def texts(elements) -> str:
    return "\n".join(e.value for e in elements)


def upload(app: AppTest, name: str, content: bytes) -> AppTest:
    app.file_uploader(key="tr_zip_upload").set_value((name, content, "application/zip"))
    return run(app)


def test_each_kind_says_where_it_comes_from_and_an_upload_can_be_used_as_one(at):
    assert rows(at) == {"CIFAR-10": "missing", "MNIST (handwritten digits)": "embedded scikit-learn digits (`digits`)",
                        "Fashion-MNIST": "missing", "Photos (a few classes)": "missing"}
    assert sources.KINDS["cifar10"].how_to_get in texts(at.caption)
    # no network on a plain page run: the size is asked for on request
    assert [b.label for b in at.button if b.key == "tr-dl-check-cifar10"] == ["Check the CIFAR-10 download"]

    upload(at, "tiny-cifar.zip", class_folders_zip(sources.CIFAR10_CLASSES))
    assert "Recognised as CIFAR-10" in texts(at.info)
    assert rows(at)["CIFAR-10"].startswith("your upload tiny-cifar.zip")
    dataset = at.session_state["tr_data.dataset"]
    choice = next(s for s in at.selectbox if s.key.startswith("tr_use_as_"))
    assert choice.value == "cifar10" and choice.label == "Use tiny-cifar.zip as"
    assert any("used as CIFAR-10" in label for label in at.selectbox(key="tr_data.dataset").options)

    choice.set_value("")
    run(at)
    assert rows(at)["CIFAR-10"] == "missing" and sources.registered("cifar10") == []
    next(s for s in at.selectbox if s.key.startswith("tr_use_as_")).set_value("photos")
    run(at)
    assert rows(at)["Photos (a few classes)"].startswith("your upload tiny-cifar.zip")
    assert sources.registered("photos") == [dataset] and "used as Photos" in texts(at.success)


def test_offline_the_panel_says_what_to_do_instead(at, monkeypatch):
    monkeypatch.setenv(sources.DOWNLOAD_BASE_ENV, closed_port_url())
    run(at)  # a configured mirror is asked at once
    warning = texts(at.warning)
    assert "CIFAR-10 could not be downloaded" in warning and "offline" in warning
    assert str(data.torchvision_folder("cifar10")) in warning and "upload a zip of class folders" in warning
    assert not at.error


def test_a_download_shows_its_size_then_lands_where_torchvision_reads_it(at, monkeypatch):
    archive = cifar_archive(padding=2_500_000)
    server = Server({"/cifar10/cifar-10-python.tar.gz": archive, "/fashion_mnist/x": b""})
    try:
        monkeypatch.setenv(sources.DOWNLOAD_BASE_ENV, server.url)
        run(at)
        labels = [b.label for b in at.button if b.key and b.key.startswith("tr-dl-")]
        assert f"Download CIFAR-10 ({len(archive) / 1e6:,.1f} MB)" in labels
        assert "answered 404" in texts(at.warning)  # Fashion-MNIST's files are not on this mirror

        # the real archive's checksum: this one is refused, with the page intact
        at.button(key="tr-dl-cifar10").click()
        run(at)
        assert "CIFAR-10 was not downloaded" in texts(at.error) and "does not match its checksum" in texts(at.error)
        assert rows(at)["CIFAR-10"] == "missing"

        real = sources.remote_files
        digest = hashlib.md5(archive).hexdigest()
        monkeypatch.setattr(sources, "remote_files", lambda kind, url=None: [
            sources.RemoteFile(f.name, digest if kind == "cifar10" else f.md5, f.urls) for f in real(kind, url)])
        reported = []  # what the page's progress bar was given
        real_download = sources.download

        def watched(kind, progress=None, **kwargs):
            def both(done, total):
                reported.append((done, total))
                progress(done, total)
            return real_download(kind, both, **kwargs)

        monkeypatch.setattr(sources, "download", watched)
        at.button(key="tr-dl-cifar10").click()
        run(at)
        assert reported[0] == (0, len(archive)) and reported[-1] == (len(archive), len(archive)) and len(reported) > 5
        assert "CIFAR-10 downloaded and unpacked" in texts(at.success)
        assert rows(at)["CIFAR-10"] == "torchvision files (`cifar10`)"
        assert data.has_torchvision_files("cifar10")
        assert not any(b.key == "tr-dl-cifar10" for b in at.button)
        assert "CIFAR-10 (torchvision)" in at.selectbox(key="tr_data.dataset").options  # no longer "not on this machine"
    finally:
        server.close()


def small_zip(per_class: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for c, name in enumerate(("dark", "light")):
            for i in range(per_class):
                pixels = np.full((16, 16, 3), 40 + 150 * c + i, np.uint8)
                png = io.BytesIO()
                Image.fromarray(pixels).save(png, "PNG")
                zf.writestr(f"{name}/{i}.png", png.getvalue())
    return buffer.getvalue()


def test_a_small_dataset_gets_enough_steps_and_the_budget_is_undone_for_a_large_one(at):
    assert (at.session_state["tr_run.batch_size"], at.session_state["tr_run.epochs"]) == (64, 2)
    upload(at, "small.zip", small_zip(40))  # 64 train images
    assert (at.session_state["tr_run.batch_size"], at.session_state["tr_run.epochs"]) == (8, 38)
    assert "64 training images" in texts(at.info) and "304 in all" in texts(at.info)
    assert "64 training images" in texts(at.caption)  # said under the dataset too
    at.selectbox(key="tr_data.dataset").set_value("digits")
    run(at)
    assert (at.session_state["tr_run.batch_size"], at.session_state["tr_run.epochs"]) == (64, 14)
    at.selectbox(key="tr_data.dataset").set_value("shapes")
    run(at)
    assert (at.session_state["tr_run.batch_size"], at.session_state["tr_run.epochs"]) == (64, 2)
    # a budget the person changed is theirs: choosing another dataset leaves it alone
    at.selectbox(key="tr_data.dataset").set_value("digits")
    run(at)
    at.number_input(key="tr_run.epochs").set_value(5)
    run(at)
    at.selectbox(key="tr_data.dataset").set_value("shapes")
    run(at)
    assert at.session_state["tr_run.epochs"] == 5


def test_a_zip_on_this_machine_is_pointed_to_recognised_and_selected(at, tmp_path):
    path = tmp_path / "cifar10.zip"
    path.write_bytes(class_folders_zip(sources.CIFAR10_CLASSES))
    at.text_input(key="tr_point_path").set_value(str(path))
    at.button(key="tr-point").click()
    run(at)
    assert at.session_state["tr_data.dataset"] == f"zip:{path.resolve()}"
    assert "Recognised as CIFAR-10" in texts(at.success) and "10 classes, 20 train / 20 test images" in texts(at.success)
    assert rows(at)["CIFAR-10"].startswith("your zip cifar10.zip")
    at.text_input(key="tr_point_path").set_value(str(tmp_path / "missing.zip"))
    at.button(key="tr-point").click()
    run(at)
    assert "cannot be used as a dataset" in texts(at.error)
    assert at.session_state["tr_data.dataset"] == f"zip:{path.resolve()}"  # unchanged


def test_asking_for_the_size_on_request_and_a_failing_part_leave_the_page_working(at, monkeypatch):
    def offline(kind, url=None):
        raise data.DatasetError(f"{kind}: no network here")

    monkeypatch.setattr(sources, "download_size", offline)
    at.button(key="tr-dl-check-cifar10").click()
    run(at)
    assert "cifar10: no network here" in texts(at.warning)
    assert any(b.key == "tr-dl-check-cifar10" and b.label == "Try again" for b in at.button)

    real_resolve = sources.resolve

    def broken(kind):
        if kind == "fashion_mnist":
            raise RuntimeError("disk on fire")
        return real_resolve(kind)

    monkeypatch.setattr(sources, "resolve", broken)
    run(at)
    assert "Fashion-MNIST: RuntimeError: disk on fire" in texts(at.error)
    assert rows(at)["MNIST (handwritten digits)"].startswith("embedded scikit-learn digits")  # the others still shown
    assert at.tabs  # and the rest of the page
