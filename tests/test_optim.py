"""Optimisers: AdaBound against its update rule, and the config reaching each optimiser."""

import math

import pytest
import torch

from core.training.config import ConfigError, TrainConfig
from core.training.optim import AdaBound, build_optimizer


def adabound_reference(p0, grads, lrs, initial_lr, betas, final_lr, gamma, eps, wd):
    """Luo et al. 2019, Algorithm 2 as in the authors' code, one float at a time."""
    b1, b2 = betas
    p = list(p0)
    m = [0.0] * len(p)
    v = [0.0] * len(p)
    clipped = 0
    for t, (g_t, lr) in enumerate(zip(grads, lrs), start=1):
        fl = final_lr * lr / initial_lr
        lower = fl * (1 - 1 / (gamma * t + 1))
        upper = fl * (1 + 1 / (gamma * t))
        for i in range(len(p)):
            g = g_t[i] + wd * p[i]
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            raw = lr * math.sqrt(1 - b2**t) / (1 - b1**t) / (math.sqrt(v[i]) + eps)
            step = min(max(raw, lower), upper)
            clipped += step != raw
            p[i] -= step * m[i]
    return p, clipped


@pytest.mark.parametrize("gamma", [1e-3, 0.5])
def test_adabound_follows_its_update_rule(gamma):
    g = torch.Generator().manual_seed(0)
    p0 = torch.randn(6, generator=g, dtype=torch.float64)
    grads = [torch.randn(6, generator=g, dtype=torch.float64) * 10 ** (k % 3 - 1) for k in range(8)]
    lrs = [0.01] * 4 + [0.002] * 4  # the schedule drops the lr: final_lr follows it
    param = torch.nn.Parameter(p0.clone())
    opt = AdaBound([param], lr=0.01, betas=(0.9, 0.99), final_lr=0.1, gamma=gamma, eps=1e-8, weight_decay=0.01)
    for grad, lr in zip(grads, lrs):
        opt.param_groups[0]["lr"] = lr
        param.grad = grad.clone()
        opt.step()
    expected, clipped = adabound_reference(
        p0.tolist(), [x.tolist() for x in grads], lrs, 0.01, (0.9, 0.99), 0.1, gamma, 1e-8, 0.01
    )
    assert param.detach().tolist() == pytest.approx(expected, rel=1e-10, abs=1e-12)
    if gamma == 0.5:
        assert clipped > 0  # fast-closing bounds: the clipping branch is exercised


def test_adabound_ends_like_sgd_with_final_lr():
    # After many steps the bounds pinch final_lr, so the step is final_lr * m whatever v is.
    param = torch.nn.Parameter(torch.zeros(3))
    opt = AdaBound([param], lr=1e-3, final_lr=0.05, gamma=1.0)
    opt.state[param] = {"step": 10**6, "exp_avg": torch.zeros(3), "exp_avg_sq": torch.zeros(3)}
    param.grad = torch.tensor([1.0, -2.0, 100.0])
    opt.step()
    m = 0.1 * param.grad
    assert param.detach() == pytest.approx((-0.05 * m).tolist(), rel=1e-5)


def test_adabound_rejects_bad_settings():
    with pytest.raises(ValueError):
        AdaBound([torch.nn.Parameter(torch.zeros(1))], final_lr=0)
    with pytest.raises(ValueError):
        AdaBound([torch.nn.Parameter(torch.zeros(1))], betas=(0.9, 1.0))


@pytest.mark.parametrize(
    "optim,cls,expected",
    [
        ({"name": "sgd", "lr": 0.1, "momentum": 0.8, "nesterov": True, "weight_decay": 1e-3}, torch.optim.SGD,
         {"momentum": 0.8, "nesterov": True, "weight_decay": 1e-3}),
        ({"name": "sgd", "momentum": 0.0, "nesterov": False}, torch.optim.SGD, {"momentum": 0.0, "nesterov": False}),
        ({"name": "adam", "lr": 1e-3, "beta1": 0.8, "weight_decay": 1e-4}, torch.optim.Adam,
         {"betas": (0.8, 0.999), "weight_decay": 1e-4}),
        ({"name": "adamw", "lr": 1e-3, "weight_decay": 0.05, "eps": 1e-6}, torch.optim.AdamW,
         {"weight_decay": 0.05, "eps": 1e-6}),
        ({"name": "adabound", "lr": 1e-3, "final_lr": 0.2, "adabound_gamma": 1e-2}, AdaBound,
         {"final_lr": 0.2, "gamma": 1e-2}),
    ],
)
def test_the_config_reaches_the_optimiser(optim, cls, expected):
    from core.training.models import build_model

    cfg = TrainConfig.from_dict({"optim": optim})
    model = build_model("fastcnn", in_channels=3, num_classes=10, width=0.25)
    opt = build_optimizer(model, cfg)
    assert type(opt) is cls
    for group in opt.param_groups:
        assert {k: group[k] for k in expected} == expected
        assert group["lr"] == pytest.approx(cfg.optim.lr * group["lr_mult"])
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))


def test_bias_lr_mult_gives_the_biases_their_own_lr_and_a_decay_divided_by_it():
    from core.training.models import build_model

    cfg = TrainConfig.from_dict({"optim": {"lr": 0.5, "weight_decay": 1e-3, "bias_lr_mult": 64.0}})
    model = build_model("fastcnn", in_channels=3, num_classes=10, width=0.25)
    opt = build_optimizer(model, cfg)
    biases = {id(p) for name, p in model.named_parameters() if name.endswith("bias")}
    assert biases  # batch norm's shifts and the stem's bias
    for group in opt.param_groups:
        in_group = {id(p) for p in group["params"]}
        if in_group <= biases:
            assert group["lr"] == pytest.approx(0.5 * 64) and group["weight_decay"] == pytest.approx(1e-3 / 64)
        else:
            assert not in_group & biases
            assert group["lr"] == pytest.approx(0.5) and group["weight_decay"] == pytest.approx(1e-3)
    # every parameter in exactly one group; the lr times the decay is the same for all of them
    assert sorted(id(p) for g in opt.param_groups for p in g["params"]) == sorted(id(p) for p in model.parameters())
    assert {round(g["lr"] * g["weight_decay"], 12) for g in opt.param_groups} == {round(0.5 * 1e-3, 12)}
    # at 1 nothing is split: the body and head groups as before
    plain = build_optimizer(model, TrainConfig.from_dict({"optim": {"bias_lr_mult": 1.0}}))
    assert [g["name"] for g in plain.param_groups] == ["body", "head"]


# ---- Muon for the convolution filters ----------------------------------------------------------


@pytest.mark.parametrize("shape", [(48, 300), (300, 48), (16, 16)])
def test_orthogonalise_keeps_the_singular_vectors_and_brings_the_values_near_one(shape):
    from core.training.optim import orthogonalise

    g = torch.randn(shape, generator=torch.Generator().manual_seed(0)) * 7.0
    g[0] *= 50.0  # one direction far larger than the rest: the update must not follow it
    o = orthogonalise(g)
    assert o.shape == g.shape and o.dtype == g.dtype
    u, unused, vh = torch.linalg.svd(g.double(), full_matrices=False)
    inner = u.T @ o.double() @ vh.T  # diagonal exactly when o has g's singular vectors
    diagonal = torch.diagonal(inner)
    assert (inner - torch.diag(diagonal)).norm() < 1e-4 * diagonal.norm()
    # the quintic's band, not exactly 1, for all but the tiny singular values (a random square
    # matrix has some), which five steps lift only 3.4445^5 times
    reached = torch.linalg.svdvals(g.double()) / g.double().norm() > 1 / 200
    assert reached.sum() >= min(shape) - 3
    assert diagonal[reached].min() > 0.6 and diagonal.max() < 1.25


def test_sgd_muon_steps_the_filters_with_muon_and_the_rest_with_plain_sgd():
    from core.training.optim import SGDMuon, orthogonalise

    gen = torch.Generator().manual_seed(1)
    filt = torch.nn.Parameter(torch.randn(4, 3, 3, 3, generator=gen))
    other = torch.nn.Parameter(torch.randn(5, generator=gen))
    ref_other = torch.nn.Parameter(other.detach().clone())
    opt = SGDMuon([{"params": [filt], "muon": True, "lr": 0.1, "weight_decay": 0.0, "ns_steps": 3},
                   {"params": [other]}], lr=0.5, momentum=0.8, nesterov=True, weight_decay=1e-2)
    ref = torch.optim.SGD([ref_other], lr=0.5, momentum=0.8, nesterov=True, weight_decay=1e-2)
    buf = torch.zeros_like(filt)
    for step in range(3):
        g_filt, g_other = torch.randn(filt.shape, generator=gen), torch.randn(5, generator=gen)
        expected = filt.detach().clone()
        buf = 0.8 * buf + g_filt
        update = g_filt + 0.8 * buf  # Nesterov
        expected = expected * (2.0 / expected.norm())  # norm sqrt(4 filters)
        expected = expected - 0.1 * orthogonalise(update.flatten(1), 3).view_as(expected)
        filt.grad, other.grad, ref_other.grad = g_filt, g_other.clone(), g_other.clone()
        opt.step()
        ref.step()
        torch.testing.assert_close(filt.detach(), expected, rtol=1e-5, atol=1e-6)
        assert torch.equal(other.detach(), ref_other.detach()), step
    assert "momentum_buffer" not in opt.state[filt]  # SGD never touched the filters


def test_muon_lr_gives_the_batch_normed_filters_a_muon_group():
    from core.training.models import build_model
    from core.training.optim import SGDMuon

    cfg = TrainConfig.from_dict({"optim": {"lr": 0.5, "weight_decay": 1e-3, "muon_lr": 0.1, "muon_steps": 2,
                                           "bias_lr_mult": 64.0}})
    model = build_model("fastcnn", in_channels=3, num_classes=10, width=0.25)
    opt = build_optimizer(model, cfg)
    assert type(opt) is SGDMuon
    convs = [m.weight for m in model.features.modules() if isinstance(m, torch.nn.Conv2d)]
    (muon,) = [g for g in opt.param_groups if g.get("muon")]
    assert [id(p) for p in muon["params"]] == [id(p) for p in convs] and len(convs) == 6
    assert muon["name"] == "body" and muon["lr"] == pytest.approx(0.1) and muon["weight_decay"] == 0.0
    assert muon["ns_steps"] == 2
    assert sorted(id(p) for g in opt.param_groups for p in g["params"]) == sorted(id(p) for p in model.parameters())
    assert {g["name"] for g in opt.param_groups} == {"body", "head"}  # freezing still finds its parts
    # a ResNet: every convolution, shortcuts included, has its batch norm
    resnet = build_model("resnet18", in_channels=3, num_classes=10, width=8)
    (muon,) = [g for g in build_optimizer(resnet, cfg).param_groups if g.get("muon")]
    assert len(muon["params"]) == sum(isinstance(m, torch.nn.Conv2d) for m in resnet.modules()) == 20
    # off: no group is marked, and plain SGD
    plain = build_optimizer(model, TrainConfig.from_dict({"optim": {"muon_lr": 0.0}}))
    assert type(plain) is torch.optim.SGD and not any(g.get("muon") for g in plain.param_groups)


def test_muon_needs_sgd_and_batch_normed_convolutions():
    from core.training.models import build_model

    with pytest.raises(ConfigError, match="optim.muon_lr pairs Muon with SGD"):
        TrainConfig.from_dict({"optim": {"name": "adam", "muon_lr": 0.1}})
    lenet = build_model("lenet", in_channels=3, num_classes=10)
    cfg = TrainConfig.from_dict({"model": {"name": "lenet"}, "optim": {"muon_lr": 0.1}})
    with pytest.raises(ValueError, match="convolutions followed by batch norm.*lenet has none"):
        build_optimizer(lenet, cfg)
