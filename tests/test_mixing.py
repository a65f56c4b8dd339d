"""Mixup, CutMix and RICAP: the mixed pixels and the soft labels must tell the same story.

Images here are built so that every pixel says where it came from (a constant per image, or a
unique number per image and position); the tests then count where the pixels of each output
came from and compare that with the label weights and the recorded draws.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from core.augment import AugmentError, mixing

N, K = 8, 10


def labelled_batch(h=12, w=16, channels=3):
    """Image i is the constant i + 1 (so its pixels are recognisable) with label i."""
    x = (torch.arange(N, dtype=torch.float32) + 1).view(N, 1, 1, 1).expand(N, channels, h, w).contiguous()
    return x, torch.arange(N)


def unique_pixels(h=12, w=16):
    """Every (image, row, column) holds a different number, repeated over the channels."""
    x = torch.arange(N * h * w, dtype=torch.float32).view(N, 1, h, w).expand(N, 3, h, w).contiguous()
    return x, torch.arange(N)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_soft_labels():
    y = torch.tensor([0, 3, 9])
    soft = mixing.soft_labels(y, K)
    assert soft.shape == (3, K) and soft.dtype == torch.float32
    assert torch.equal(soft.argmax(1), y) and torch.equal(soft.sum(1), torch.ones(3))
    already = torch.full((3, K), 0.1)
    assert mixing.soft_labels(already, K) is already
    with pytest.raises(AugmentError, match=r"\[N, 10\]"):
        mixing.soft_labels(torch.zeros(3, 4), K)


@pytest.mark.parametrize("fn,strength", [(mixing.mixup, 0.4), (mixing.cutmix, 1.0), (mixing.ricap, 0.3)])
def test_rows_sum_to_one_and_shapes_kept(fn, strength):
    x, y = labelled_batch()
    mixed, soft, _ = fn(x, y, K, strength, gen())
    assert mixed.shape == x.shape and mixed.dtype == x.dtype
    assert soft.shape == (N, K)
    torch.testing.assert_close(soft.sum(1), torch.ones(N))
    assert (soft >= 0).all()
    # soft labels as input (e.g. a second mixing) are accepted and still sum to one
    _, again, _ = fn(mixed, soft, K, strength, gen(1))
    torch.testing.assert_close(again.sum(1), torch.ones(N))


def test_mixup_is_the_convex_combination_with_its_lambda_and_partner():
    x = torch.rand(N, 3, 6, 7, generator=gen(5))
    y = torch.arange(N)
    mixed, soft, info = mixing.mixup(x, y, K, 0.4, gen())
    lam, j = info["lam"], info["partner"]
    assert sorted(j.tolist()) == list(range(N))  # a permutation: every image is someone's partner
    assert lam.shape == (N,) and ((lam >= 0) & (lam <= 1)).all() and len(set(lam.tolist())) == N
    for i in range(N):
        torch.testing.assert_close(mixed[i], lam[i] * x[i] + (1 - lam[i]) * x[j[i]])
        expected = lam[i] * torch.nn.functional.one_hot(y[i], K) + (1 - lam[i]) * torch.nn.functional.one_hot(y[j[i]], K)
        torch.testing.assert_close(soft[i], expected.float())


def test_cutmix_label_weight_is_the_share_of_partner_pixels():
    x, y = labelled_batch(h=13, w=17)  # odd sides: the box may be clipped unevenly
    mixed, soft, info = mixing.cutmix(x, y, K, 1.0, gen(2))
    j = info["partner"]
    partnered = 0
    for i in range(N):
        from_partner = (mixed[i] == x[j[i]]).all(0).double().mean().item()
        from_self = (mixed[i] == x[i]).all(0).double().mean().item()
        if j[i] == i:  # its own partner: nothing changes
            assert soft[i, i] == pytest.approx(1.0) and torch.equal(mixed[i], x[i])
            continue
        partnered += 1
        assert from_partner + from_self == pytest.approx(1.0)
        assert soft[i, j[i]].item() == pytest.approx(from_partner, abs=1e-6)
        assert soft[i, i].item() == pytest.approx(from_self, abs=1e-6)
        assert info["lam"][i].item() == pytest.approx(from_self, abs=1e-6)
        # the pasted region is the recorded box
        top, left, bh, bw = info["box"][i].tolist()
        assert (mixed[i, :, top:top + bh, left:left + bw] == x[j[i], :, :bh, :bw]).all()
    assert partnered >= N - 2


def test_cutmix_kept_share_is_distributed_as_in_the_reference_code():
    # The corrected lam of clovaai/CutMix-PyTorch's rand_bbox, simulated with numpy: box side
    # int(side * sqrt(1 - lam)), uniform centre, clipped by the border.
    side, draws = 16, 10000
    rng = np.random.default_rng(0)
    lam = rng.beta(1.0, 1.0, draws)
    cut = (side * np.sqrt(1 - lam)).astype(int)
    cx, cy = rng.integers(side, size=draws), rng.integers(side, size=draws)
    x1, x2 = np.clip(cx - cut // 2, 0, side), np.clip(cx + cut // 2, 0, side)
    y1, y2 = np.clip(cy - cut // 2, 0, side), np.clip(cy + cut // 2, 0, side)
    reference = 1 - (x2 - x1) * (y2 - y1) / side**2
    _, _, info = mixing.cutmix(torch.zeros(draws, 1, side, side), torch.zeros(draws, dtype=torch.long), 2, 1.0, gen(3))
    ours = info["lam"].double().numpy()
    assert abs(ours.mean() - reference.mean()) < 0.01
    assert abs(np.quantile(ours, 0.25) - np.quantile(reference, 0.25)) < 0.02


def test_ricap_patches_come_from_their_recorded_sources():
    h, w = 12, 16
    x, y = unique_pixels(h, w)
    mixed, soft, info = mixing.ricap(x, y, K, 0.3, gen(4))
    areas, sources = info["areas"], info["sources"]
    bh, bw = info["boundary"]
    assert areas.sum().item() == pytest.approx(1.0)
    heights, widths = (bh, bh, h - bh, h - bh), (bw, w - bw, bw, w - bw)
    origins = ((0, 0), (0, bw), (bh, 0), (bh, bw))
    for k in range(4):
        assert areas[k].item() == pytest.approx(heights[k] * widths[k] / (h * w))
        assert info["boxes"][k] == (*origins[k], heights[k], widths[k])  # what the Lab outlines
    source_of = mixed[:, 0].long() // (h * w)  # which image each output pixel was taken from
    for i in range(N):
        counted = torch.bincount(source_of[i].flatten(), minlength=N).double() / (h * w)
        expected = torch.zeros(K, dtype=torch.float64)
        for k in range(4):
            (ty, tx), (oy, ox) = origins[k], info["offsets"][k]
            src = sources[i, k]
            patch = mixed[i, :, ty:ty + heights[k], tx:tx + widths[k]]
            assert torch.equal(patch, x[src, :, oy:oy + heights[k], ox:ox + widths[k]])
            expected[y[src]] += areas[k].item()
        torch.testing.assert_close(soft[i].double(), expected)
        torch.testing.assert_close(counted, expected[:N])


def test_ricap_boundary_varies_between_batches():
    x, y = labelled_batch()
    boundaries = {mixing.ricap(x, y, K, 0.3, gen(s))[2]["boundary"] for s in range(10)}
    assert len(boundaries) > 5


def test_beta_is_reproducible_and_beta_distributed():
    a = mixing.beta(0.4, 1000, gen(9))
    assert torch.equal(a, mixing.beta(0.4, 1000, gen(9)))
    assert not torch.equal(a, mixing.beta(0.4, 1000, gen(10)))
    for alpha in (0.2, 1.0, 4.0):
        draws = mixing.beta(alpha, 100_000, gen(1)).double()
        assert ((draws >= 0) & (draws <= 1)).all()
        assert draws.mean().item() == pytest.approx(0.5, abs=0.005)
        # Var of Beta(a, a) = a^2 / ((2a)^2 (2a + 1)) = 1 / (4 (2a + 1))
        assert draws.var().item() == pytest.approx(1 / (4 * (2 * alpha + 1)), rel=0.03)
    with pytest.raises(AugmentError, match="alpha"):
        mixing.beta(0.0, 3, gen())


def test_mixers_are_reproducible_from_the_generator():
    x = torch.rand(N, 3, 8, 8, generator=gen(6))
    y = torch.arange(N)
    for kind in mixing.MIXERS:
        a = mixing.mix(kind, x, y, K, 0.5, gen(7))
        b = mixing.mix(kind, x, y, K, 0.5, gen(7))
        c = mixing.mix(kind, x, y, K, 0.5, gen(8))
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        assert not torch.equal(a[0], c[0])
    with pytest.raises(AugmentError, match="'blend'"):
        mixing.mix("blend", x, y, K, 0.5, gen())


def test_one_hot_rows_are_exact_for_numpy_beta_edge_cases():
    # alpha tiny: lam is 0 or 1 almost surely, and the label is then one of the two one-hot rows
    x, y = labelled_batch()
    _, soft, info = mixing.mixup(x, y, K, 0.001, gen(0))
    lam = info["lam"]
    assert ((lam < 1e-3) | (lam > 1 - 1e-3)).all()
    assert np.allclose(soft.max(1).values.numpy(), 1.0, atol=1e-3)


# ---- declared once: the config, the trainer's batch mixer and the Lab read MIXERS ---------------


def test_each_mixer_is_declared_once_and_the_config_field_comes_from_it():
    from core.training.config import TricksConfig, config_params

    params = config_params()
    for mixer in mixing.MIXERS.values():
        assert mixer.label and mixer.help and mixer.paper.startswith("https://") and mixer.pictures in (2, 4)
        field = params[f"tricks.{mixer.config_field}"]
        assert (field.low, field.high, field.step) == (0.0, mixer.strength.high, mixer.strength.step)
        assert field.label.startswith(mixer.label) and mixer.help in field.help and "0 is off" in field.help
        assert getattr(TricksConfig(), mixer.config_field) == 0.0
        with pytest.raises(ValueError, match=mixer.config_field):
            TricksConfig(**{mixer.config_field: mixer.strength.high + 1})
        # the declaration validates what it is called with: Beta needs a positive strength
        with pytest.raises(AugmentError, match=mixer.strength.name):
            mixer(*labelled_batch(), K, 0.0, gen())
        info = mixer(*labelled_batch(), K, 0.5, gen(1))[2]
        assert mixer.describe(info, 0, [f"picture {k}" for k in range(N)]).count("picture") >= 1


def test_the_batch_mixer_uses_the_mixers_a_config_switches_on():
    from core.training.config import TricksConfig

    off = mixing.BatchMixer.from_config(TricksConfig())
    assert not off and off(*labelled_batch(), K, gen()) is None
    both = mixing.BatchMixer.from_config(TricksConfig(mixup_alpha=0.2, ricap_beta=0.3))
    assert [(m.name, s) for m, s in both.mixers] == [("mixup", 0.2), ("ricap", 0.3)]
    kinds = set()
    for seed in range(20):
        x, soft, info = both(*labelled_batch(), K, gen(seed))
        assert soft.shape == (N, K) and torch.allclose(soft.sum(1), torch.ones(N))
        kinds.add("ricap" if "areas" in info else "mixup")
    assert kinds == {"mixup", "ricap"}  # one of them per batch, both used
    never = mixing.BatchMixer.from_config(TricksConfig(cutmix_alpha=1.0, mix_prob=0.0))
    assert all(never(*labelled_batch(), K, gen(s)) is None for s in range(5))
