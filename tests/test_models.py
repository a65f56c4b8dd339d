"""Models: shapes and gradients for every declared model, reference parameter counts, options,
initialisation against the published bounds, parameter groups, pretrained weights offline."""
from __future__ import annotations

import math
import urllib.error

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from core.training.models import (
    MODELS,
    ModelError,
    build_model,
    count_parameters,
    head_module,
    init_weights,
    param_groups,
)

SIZES = {name: (28, 32, 64) if name in ("fastcnn", "resnet18", "tv_resnet18", "mlp") else (28, 32) for name in MODELS}
CASES = [(name, c, s) for name in MODELS for c in (1, 3) for s in SIZES[name]]
# MobileNetV2's linear bottlenecks end in batch norm and lead (directly or through residuals) into a
# 1x1 conv and batch norm, which in training mode subtracts any constant shift again: some of its
# batch-norm biases get exactly zero gradient in training mode, by design. Checked in eval mode.
GRADIENT_IN_EVAL_MODE = {"tv_mobilenet_v2"}


@pytest.mark.parametrize("name,channels,size", CASES, ids=[f"{n}-c{c}-{s}px" for n, c, s in CASES])
def test_every_model_runs_forward_and_backward(name, channels, size):
    torch.manual_seed(0)
    model = build_model(name, in_channels=channels, num_classes=7, image_size=size)
    if name in GRADIENT_IN_EVAL_MODE:
        model.eval()
    out = model(torch.randn(2, channels, size, size))
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    F.cross_entropy(out, torch.tensor([1, 5])).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"parameters without gradient: {missing[:5]}"


def test_parameter_counts_match_the_reference_architectures():
    counts = {name: count_parameters(build_model(name, in_channels=3, num_classes=10)) for name in MODELS}
    assert len(set(counts.values())) == len(counts) and min(counts.values()) > 0
    # Published figures for the CIFAR forms: LeNet-5 on 3x32x32, 62,006; ResNet-18, 11,173,962
    # (kuangliu/pytorch-cifar). VGG there keeps conv biases before BN (9,231,114 and 14,728,266);
    # ours drops them as BN cancels them: minus one bias per conv channel.
    assert counts["lenet"] == 62_006
    assert counts["resnet18"] == 11_173_962
    assert counts["vgg11"] == 9_231_114 - (64 + 128 + 2 * 256 + 4 * 512)
    assert counts["vgg16"] == 14_728_266 - (2 * 64 + 2 * 128 + 3 * 256 + 6 * 512)
    assert 300_000 * 0.9 < counts["fastcnn"] < 1_000_000
    # torchvision's own ResNet-18 is the oracle for the ImageNet form
    imagenet = build_model("tv_resnet18", in_channels=3, num_classes=1000, image_size=64)
    assert count_parameters(imagenet) == count_parameters(torchvision.models.resnet18()) == 11_689_512


def test_options_change_the_architecture_as_declared():
    linear = build_model("mlp", in_channels=1, num_classes=10, image_size=28, hidden=[])
    assert count_parameters(linear) == 28 * 28 * 10 + 10
    wide = build_model("mlp", in_channels=1, num_classes=10, image_size=28, hidden=[100])
    assert count_parameters(wide) == 28 * 28 * 100 + 100 + 100 * 10 + 10

    base = count_parameters(build_model("fastcnn", in_channels=3, num_classes=10))
    assert count_parameters(build_model("fastcnn", in_channels=3, num_classes=10, width=2.0)) > 3 * base
    assert count_parameters(build_model("fastcnn", in_channels=3, num_classes=10, depth=3)) > base
    half = count_parameters(build_model("resnet18", in_channels=3, num_classes=10, width=32))
    assert 11_173_962 / 5 < half < 11_173_962 / 3  # conv weights scale with width squared

    tanh = build_model("lenet", in_channels=1, num_classes=10, image_size=28, activation="tanh")
    kinds = {type(m) for m in tanh.modules()}
    assert nn.Tanh in kinds and nn.ReLU not in kinds
    plain_vgg = build_model("vgg11", in_channels=3, num_classes=10, batch_norm=False)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in plain_vgg.modules())
    narrow_vgg = build_model("vgg11", in_channels=3, num_classes=10, width=8)
    convs = [m.out_channels for m in narrow_vgg.modules() if isinstance(m, nn.Conv2d)]
    assert convs == [8, 16, 32, 32, 64, 64, 64, 64]  # the paper's 64-128-256-512 at an eighth
    assert narrow_vgg.head.in_features == 64


def test_fastcnn_logit_scale_multiplies_the_output():
    torch.manual_seed(0)
    one = build_model("fastcnn", in_channels=3, num_classes=10, logit_scale=1.0).eval()
    ninth = build_model("fastcnn", in_channels=3, num_classes=10, logit_scale=1 / 9).eval()
    ninth.load_state_dict(one.state_dict())
    x = torch.randn(4, 3, 32, 32)
    torch.testing.assert_close(ninth(x), one(x) / 9)


def test_bad_names_and_options_fail_loudly():
    with pytest.raises(ModelError, match="unknown model"):
        build_model("alexnet", in_channels=3, num_classes=10)
    with pytest.raises(ModelError, match=r"unknown option\(s\) \['widht'\]"):
        build_model("fastcnn", in_channels=3, num_classes=10, widht=2)
    with pytest.raises(ModelError, match="out of range"):
        build_model("fastcnn", in_channels=3, num_classes=10, depth=9)
    with pytest.raises(ModelError, match="whole number"):
        build_model("mlp", in_channels=3, num_classes=10, hidden=[12.5])
    with pytest.raises(ModelError, match="one of"):
        build_model("lenet", in_channels=3, num_classes=10, activation="sigmoid")
    with pytest.raises(ModelError, match="true or false"):
        build_model("tv_resnet18", in_channels=3, num_classes=10, pretrained="yes")
    with pytest.raises(ModelError, match="num_classes"):
        build_model("mlp", in_channels=3, num_classes=1)
    with pytest.raises(ModelError, match="image_size"):
        build_model("lenet", in_channels=3, num_classes=10, image_size=12)


def test_declared_defaults_validate_and_build():
    for name, info in MODELS.items():
        assert info.validate(name, {}) == info.defaults()
        assert info.label and info.help


@pytest.mark.parametrize("name", ["mlp", "fastcnn", "lenet"])
def test_a_tiny_model_overfits_a_tiny_batch(name):
    torch.manual_seed(0)
    options = {"width": 0.5} if name == "fastcnn" else {}
    model = build_model(name, in_channels=3, num_classes=10, image_size=32, **options)
    x, y = torch.randn(16, 3, 32, 32), torch.arange(16) % 10
    opt = torch.optim.Adam(model.parameters(), lr=1e-2 if name == "fastcnn" else 3e-3)
    first = F.cross_entropy(model(x), y).item()
    for _ in range(50):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1 * first
    assert torch.equal(model(x).argmax(1), y)


def _fans(weight: torch.Tensor) -> tuple[int, int]:
    receptive = weight[0, 0].numel() if weight.dim() > 2 else 1
    return weight.shape[1] * receptive, weight.shape[0] * receptive


def test_xavier_init_follows_glorot_bounds():
    torch.manual_seed(0)
    model = build_model("lenet", in_channels=3, num_classes=10)
    before = {n: p.clone() for n, p in model.named_parameters()}
    init_weights(model, "xavier")
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            fan_in, fan_out = _fans(module.weight)
            bound = math.sqrt(6 / (fan_in + fan_out))  # Glorot & Bengio (2010), eq. 16
            w = module.weight.detach()
            assert w.abs().max() <= bound + 1e-6
            assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.25)  # uniform(-b, b) has std b/sqrt(3)
            assert (module.bias == 0).all()
            assert not torch.equal(w, before[f"{name}.weight"])


def test_kaiming_init_has_he_std_and_default_matches_pytorch():
    torch.manual_seed(0)
    model = build_model("fastcnn", in_channels=3, num_classes=10)
    init_weights(model, "kaiming")
    conv = [m for m in model.modules() if isinstance(m, nn.Conv2d)][-1]
    fan_in, _ = _fans(conv.weight)
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.05)

    # "default" redoes exactly what construction did: same seed, same weights
    torch.manual_seed(1)
    fresh = build_model("lenet", in_channels=3, num_classes=10)
    other = build_model("lenet", in_channels=3, num_classes=10)
    torch.manual_seed(1)
    init_weights(other, "default")
    for a, b in zip(fresh.state_dict().values(), other.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(ModelError, match="init scheme"):
        init_weights(fresh, "orthogonal")


@pytest.mark.parametrize("name", list(MODELS))
def test_param_groups_partition_parameters_and_head_is_the_classifier(name):
    model = build_model(name, in_channels=3, num_classes=10)
    groups = param_groups(model)
    ids_body, ids_head = {id(p) for p in groups["body"]}, {id(p) for p in groups["head"]}
    assert not ids_body & ids_head
    assert ids_body | ids_head == {id(p) for p in model.parameters()}
    assert len(groups["body"]) + len(groups["head"]) == len(list(model.parameters()))
    head = head_module(model)
    assert isinstance(head, nn.Linear) and head.out_features == 10
    assert ids_head == {id(p) for p in head.parameters()}
    # the head is the last layer applied: its output is the model's output
    seen = []
    handle = head.register_forward_hook(lambda m, i, o: seen.append(o))
    model.eval()
    out = model(torch.randn(1, 3, 32, 32))
    handle.remove()
    scale = model.logit_scale if name == "fastcnn" else 1.0
    torch.testing.assert_close(out, seen[0] * scale)


def test_pretrained_weights_offline_name_the_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.models._api.WeightsEnum, "get_state_dict", offline)
    with pytest.raises(ModelError) as err:
        build_model("tv_resnet18", in_channels=3, num_classes=5, pretrained=True)
    message = str(err.value)
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in message and "resnet18-f37072fd.pth" in message


def test_parameter_count_never_fetches_pretrained_weights(monkeypatch):
    from core.training.models import parameter_count

    def offline(*args, **kwargs):
        raise AssertionError("fetched weights just to count them")

    monkeypatch.setattr(torchvision.models._api.WeightsEnum, "get_state_dict", offline)
    n = parameter_count("tv_resnet18", {"pretrained": True}, in_channels=3, num_classes=5, image_size=32)
    assert n == count_parameters(build_model("tv_resnet18", in_channels=3, num_classes=5))


def test_pretrained_weights_are_loaded_and_adapted_to_gray_input(monkeypatch):
    torch.manual_seed(0)
    reference = torchvision.models.resnet18().state_dict()
    monkeypatch.setattr(torchvision.models._api.WeightsEnum, "get_state_dict", lambda *a, **k: reference)
    model = build_model("tv_resnet18", in_channels=3, num_classes=5, pretrained=True)
    torch.testing.assert_close(model.layer3[0].conv1.weight, reference["layer3.0.conv1.weight"])
    assert model.fc.out_features == 5

    gray = build_model("tv_resnet18", in_channels=1, num_classes=5, pretrained=True).eval()
    rgb = torchvision.models.resnet18()
    rgb.load_state_dict(reference)
    rgb.fc = gray.fc
    x = torch.rand(2, 1, 64, 64)
    # A gray image through the adapted net equals the same image in RGB through the original
    torch.testing.assert_close(gray(x), rgb.eval()(x.repeat(1, 3, 1, 1)), rtol=1e-4, atol=1e-4)


def test_patch_whitening_makes_the_patch_second_moment_the_identity():
    from core.training.models import PatchWhitening

    g = torch.Generator().manual_seed(0)
    # correlated channels and neighbours, like photos: a colour mix of a smoothed field, plus noise
    smooth = F.avg_pool2d(torch.randn(64, 3, 20, 20, generator=g), 3, stride=1, padding=1)
    mix = torch.tensor([[1.0, 0.8, 0.6], [0.8, 1.0, 0.8], [0.6, 0.8, 1.0]])
    x = torch.einsum("ij,njhw->nihw", mix, smooth) + 0.1 * torch.randn(64, 3, 20, 20, generator=g)
    patches = x.unfold(2, 2, 1).unfold(3, 2, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, 12).double()
    assert (patches.T @ patches / len(patches) - torch.eye(12)).abs().max() > 0.5  # far from white before

    layer = PatchWhitening(3, eps=0.0)
    layer.fit(x)
    out = F.conv2d(x.double(), layer.weight[:12].double()).permute(0, 2, 3, 1).reshape(-1, 12)
    # each filter outputs unit variance and the outputs are uncorrelated
    torch.testing.assert_close(out.T @ out / len(out), torch.eye(12, dtype=torch.float64), atol=1e-4, rtol=0)
    torch.testing.assert_close(layer.weight[12:], -layer.weight[:12])


def test_fastcnn_flip_tta_averages_an_image_and_its_mirror_in_eval_only():
    torch.manual_seed(0)
    plain = build_model("fastcnn", in_channels=3, num_classes=10, stem="conv")
    tta = build_model("fastcnn", in_channels=3, num_classes=10, stem="conv", flip_tta=True)
    tta.load_state_dict(plain.state_dict())
    x = torch.randn(4, 3, 32, 32)
    plain.eval(), tta.eval()
    torch.testing.assert_close(tta(x), (plain(x) + plain(x.flip(-1))) / 2)
    plain.train(), tta.train()
    torch.testing.assert_close(tta(x), plain(x))


@pytest.mark.parametrize("flip", [False, True])
def test_fastcnn_shift_tta_weighs_the_image_half_and_two_one_pixel_shifts_a_quarter_each(flip):
    torch.manual_seed(0)
    plain = build_model("fastcnn", in_channels=3, num_classes=10, stem="conv")
    tta = build_model("fastcnn", in_channels=3, num_classes=10, stem="conv", flip_tta=flip, shift_tta=True)
    tta.load_state_dict(plain.state_dict())
    x = torch.randn(4, 3, 32, 32)
    plain.eval(), tta.eval()

    def views(img):
        return (plain(img) + plain(img.flip(-1))) / 2 if flip else plain(img)

    # by hand: mirror the border, then cut the 32x32 window one pixel up-left and one down-right
    padded = torch.cat((x[..., 1:2, :], x, x[..., -2:-1, :]), dim=-2)
    padded = torch.cat((padded[..., 1:2], padded, padded[..., -2:-1]), dim=-1)
    expected = views(x) / 2 + (views(padded[..., :32, :32]) + views(padded[..., 2:, 2:])) / 4
    torch.testing.assert_close(tta(x), expected)
    assert not torch.allclose(tta(x), views(x))  # the shifted copies change the answer
    plain.train(), tta.train()
    torch.testing.assert_close(tta(x), plain(x))  # training sees one view


def test_fastcnn_fixed_bn_scale_keeps_every_scale_at_one_through_training_and_freezing():
    from core.training.config import TrainConfig
    from core.training.finetune import apply_freezing
    from core.training.optim import build_optimizer

    torch.manual_seed(0)
    model = build_model("fastcnn", in_channels=3, num_classes=10, width=0.25, fixed_bn_scale=True)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all("weight" not in dict(bn.named_parameters()) for bn in bns)
    assert all(bn.bias.requires_grad for bn in bns)  # the shifts still learn
    cfg = TrainConfig.from_dict({"optim": {"lr": 0.5, "freeze_body_epochs": 1}})
    opt = build_optimizer(model, cfg)
    body = [p for g in opt.param_groups if g["name"] == "body" for p in g["params"]]
    before = [bn.bias.detach().clone() for bn in bns]
    for epoch in (1, 2):  # frozen, then unfrozen: unfreezing must not make the scale a parameter
        apply_freezing(model, body, cfg, epoch)
        loss = F.cross_entropy(model(torch.randn(8, 3, 32, 32)), torch.randint(0, 10, (8,)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(torch.equal(bn.weight, torch.ones_like(bn.weight)) for bn in bns)
    assert any(not torch.equal(bn.bias, b) for bn, b in zip(bns, before))
    keys = set(build_model("fastcnn", in_channels=3, num_classes=10, width=0.25).state_dict())
    assert set(model.state_dict()) == keys  # a fixed-scale net saves and loads like any other
