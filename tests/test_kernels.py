"""Our batched augmentations against torchvision, image by image.

Every op draws its parameters for a whole batch and applies them in one call. Here each image's
drawn parameters are replayed through torchvision's v2 functional kernel (the oracle) and the
results compared. Exact where the arithmetic is the same; otherwise a tolerance with the reason
next to it. The sampling tests check that the draws follow torchvision's rules (ranges, retry
and fallback behaviour, orientation of the aspect ratio), compared on many draws of both.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from core.augment import get_op
from core.augment import kernels as K

# RGB square, gray, and a non-square RGB batch (odd sides catch off-by-one halving).
SHAPES = [(6, 3, 24, 24), (6, 1, 24, 24), (6, 3, 19, 30)]
SHAPE_IDS = ["rgb", "gray", "nonsquare"]

# Where the arithmetic differs only in order (a separable blur against a 2-D one, a closed-form
# HSV round trip against a table lookup, bilinear taps blended rows-first instead of
# columns-first, grid_sample fed coordinates computed in another order) results agree to a few
# float32 ulps of 1; 1e-5 leaves room for that and for nothing else.
ATOL = 1e-5


def images(shape, seed=0):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def run(name, x, params=None, seed=1):
    """Sample and apply op `name` on batch x; returns (output, drawn)."""
    op = get_op(name)
    prm = op.validate(params or {})
    drawn = op.sample(x.shape[0], tuple(x.shape[1:]), prm, torch.Generator().manual_seed(seed), {})
    return op.apply(x, drawn, prm, {}), drawn


def close(ours, theirs, atol=ATOL):
    torch.testing.assert_close(ours, theirs, atol=atol, rtol=0)


# ---- flips --------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("name,oracle", [("hflip", F.horizontal_flip), ("vflip", F.vertical_flip)])
def test_flips(shape, name, oracle):
    x = images(shape)
    out, d = run(name, x, {"p": 0.5})
    assert 0 < int(d["flipped"].sum()) < shape[0], "the seed should flip some images and not others"
    for i in range(shape[0]):
        torch.testing.assert_close(out[i], oracle(x[i]) if d["flipped"][i] else x[i], atol=0, rtol=0)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(7, 3, 4, 6), (7, 3, 4, 5), (7, 1, 3, 3), (7, 2, 1, 1)],
                         ids=["8-byte-rows", "4-byte-rows", "odd-rows", "2-byte-rows"])
def test_index_copy_is_torchs(dtype, shape):
    # ours copies whole images as 8- or 4-byte words where their bytes divide evenly
    x = (torch.rand(shape) * 255).to(dtype)
    idx = torch.tensor([5, 0, 3])
    rows = (torch.rand((3,) + shape[1:]) * 255).to(dtype)
    before = x.clone()
    out = K.index_copy(x, idx, rows)
    assert out.dtype == dtype and out.shape == x.shape
    assert torch.equal(out, x.index_copy(0, idx, rows))
    assert torch.equal(x, before)  # a copy: x itself is untouched
    assert torch.equal(K.index_copy(x, idx[:0], rows[:0]), x)
    flips = torch.tensor([True, False, True, True, False, False, True])
    assert torch.equal(K.apply_to(flips, x, lambda s: s.flip(-1)),
                       torch.stack([x[i].flip(-1) if flips[i] else x[i] for i in range(7)]))


# ---- geometry -----------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("size", [0, 40, 11])  # input size, upscaling, downscaling
def test_random_resized_crop(shape, size):
    x = images(shape)
    out, d = run("random_resized_crop", x, {"size": size, "scale": [0.05, 1.0]})
    out_hw = list(shape[2:]) if size == 0 else [size, size]
    for i in range(shape[0]):
        top, left, h, w = d["box"][i].tolist()
        close(out[i], F.resized_crop(x[i], top, left, h, w, out_hw, antialias=False))


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_resized_crop_kernel_upscales_tiny_crops(shape):
    # Crops far smaller than the output, touching every border: the clamping at the crop's edge
    # must reproduce "crop first, then resize" and never read pixels outside the crop.
    x = images(shape)
    h, w = shape[2:]
    boxes = torch.tensor([[0, 0, 1, 1], [0, 0, 2, 3], [h - 3, w - 2, 3, 2], [5, 7, 4, 5], [0, 0, h, w], [h - 1, 0, 1, w]])
    out = K.resized_crop(x, boxes, (29, 31))
    for i, (top, left, bh, bw) in enumerate(boxes.tolist()):
        close(out[i], F.resized_crop(x[i], top, left, bh, bw, [29, 31], antialias=False))


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
def test_pad_crop(shape, mode):
    x = images(shape)
    for size in (0, 20):
        out, d = run("pad_crop", x, {"padding": 5, "padding_mode": mode, "size": size})
        for i in range(shape[0]):
            top, left, h, w = d["box"][i].tolist()
            padded = F.pad(x[i], [5], padding_mode=mode)
            # the drawn box is in the unpadded image's coordinates
            torch.testing.assert_close(out[i], F.crop(padded, top + 5, left + 5, h, w), atol=0, rtol=0)


def test_pad_crop_reflect_wider_than_the_image_repeats_the_edge():
    # torchvision raises when a reflection is wider than the image; we fall back to "edge"
    x = images((4, 3, 5, 6))
    out, d = run("pad_crop", x, {"padding": 5, "padding_mode": "reflect"})
    for i in range(4):
        top, left, h, w = d["box"][i].tolist()
        expected = F.crop(F.pad(x[i], [5], padding_mode="edge"), top + 5, left + 5, h, w)
        torch.testing.assert_close(out[i], expected, atol=0, rtol=0)


WARP_SETTINGS = [("bilinear", 0.0), ("bilinear", 0.7), ("nearest", 0.0), ("nearest", 0.7)]
TV_MODE = {"bilinear": v2.InterpolationMode.BILINEAR, "nearest": v2.InterpolationMode.NEAREST}


def warp_close(ours, theirs, mode):
    if mode == "nearest":
        # The grid is built with torchvision's own float32 operations, so the nearest pixel is
        # the same one and the values are equal.
        torch.testing.assert_close(ours, theirs, atol=0, rtol=0)
    else:
        close(ours, theirs)


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("mode,fill", WARP_SETTINGS)
def test_rotation(shape, mode, fill):
    x = images(shape)
    out, d = run("rotation", x, {"degrees": [-170, 170], "interpolation": mode, "fill": fill})
    for i in range(shape[0]):
        angle = -d["angle"][i].item()  # stored as the affine angle, which turns the other way
        warp_close(out[i], F.rotate(x[i], angle, interpolation=TV_MODE[mode], fill=fill), mode)


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("mode,fill", WARP_SETTINGS)
def test_affine(shape, mode, fill):
    x = images(shape)
    params = {"degrees": [-40, 40], "translate_x": 0.2, "translate_y": 0.3, "scale": [0.7, 1.3],
              "shear_x": [-20, 20], "shear_y": [-10, 15], "interpolation": mode, "fill": fill}
    out, d = run("affine", x, params)
    for i in range(shape[0]):
        tv = F.affine(x[i], angle=d["angle"][i].item(), translate=[d["tx"][i].item(), d["ty"][i].item()],
                      scale=d["scale"][i].item(), shear=[d["shear_x"][i].item(), d["shear_y"][i].item()],
                      interpolation=TV_MODE[mode], fill=fill)
        warp_close(out[i], tv, mode)


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("mode,fill", WARP_SETTINGS)
def test_perspective(shape, mode, fill):
    x = images(shape)
    out, d = run("perspective", x, {"p": 0.7, "distortion": 0.8, "interpolation": mode, "fill": fill}, seed=3)
    assert 0 < int(d["applied"].sum()) < shape[0]
    for i in range(shape[0]):
        if not d["applied"][i]:
            torch.testing.assert_close(out[i], x[i], atol=0, rtol=0)
            continue
        start = d["start"][i].long().tolist()
        end = d["end"][i].long().tolist()
        warp_close(out[i], F.perspective(x[i], start, end, interpolation=TV_MODE[mode], fill=fill), mode)


# ---- colour -------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize(
    "kernel,oracle,low,high",
    [
        (K.adjust_brightness, F.adjust_brightness, 0.0, 2.0),
        (K.adjust_contrast, F.adjust_contrast, 0.0, 2.0),
        (K.adjust_saturation, F.adjust_saturation, 0.0, 2.0),
        # closed-form HSV round trip vs torchvision's table lookup: equal up to float rounding
        (K.adjust_hue, F.adjust_hue, -0.5, 0.5),
    ],
    ids=["brightness", "contrast", "saturation", "hue"],
)
def test_colour_kernels(shape, kernel, oracle, low, high):
    x = images(shape)
    x[0, :, :4, :4] = 0.5  # grey pixels: hue and saturation undefined
    x[1, :, :4, :4] = 1.0  # saturated white: contrast and brightness clamp
    factors = torch.linspace(low, high, shape[0], dtype=torch.float64)
    out = kernel(x, factors)
    for i in range(shape[0]):
        close(out[i], oracle(x[i], factors[i].item()))


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_color_jitter_in_drawn_order(shape):
    x = images((24,) + shape[1:])  # 24 images so that many different orders are exercised
    params = {"brightness": 0.8, "contrast": 0.8, "saturation": 0.8, "hue": 0.4}
    out, d = run("color_jitter", x, params)
    adjust = {0: ("brightness", F.adjust_brightness), 1: ("contrast", F.adjust_contrast),
              2: ("saturation", F.adjust_saturation), 3: ("hue", F.adjust_hue)}
    assert len({tuple(o) for o in d["order"].tolist()}) > 10
    for i in range(x.shape[0]):
        ref = x[i]
        for k in d["order"][i].tolist():
            name, fn = adjust[k]
            ref = fn(ref, d[name][i].item())
        close(out[i], ref)


def test_color_jitter_skips_disabled_adjustments():
    # ColorJitter(hue=0) never calls adjust_hue; a round trip through HSV is not an exact identity
    x = images((6, 3, 16, 16))
    out, d = run("color_jitter", x, {"brightness": 0.5, "contrast": 0.0, "saturation": 0.0, "hue": 0.0})
    for i in range(6):
        torch.testing.assert_close(out[i], F.adjust_brightness(x[i], d["brightness"][i].item()), atol=0, rtol=0)


def test_grayscale():
    x = images((6, 3, 19, 30))
    out, d = run("grayscale", x, {"p": 0.5}, seed=2)
    assert 0 < int(d["gray"].sum()) < 6
    for i in range(6):
        close(out[i], F.rgb_to_grayscale(x[i], num_output_channels=3) if d["gray"][i] else x[i])


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("kernel_size", [3, 9])
def test_gaussian_blur(shape, kernel_size):
    x = images(shape)
    out, d = run("gaussian_blur", x, {"kernel_size": kernel_size, "sigma": [0.1, 4.0]})
    for i in range(shape[0]):
        s = d["sigma"][i].item()
        # one separable pass per axis vs torchvision's 2-D kernel: same sums, other order
        close(out[i], F.gaussian_blur(x[i], [kernel_size, kernel_size], [s, s]))


# ---- occlusion ----------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("value", ["zeros", "random", "mean"])
def test_random_erasing(shape, value):
    x = images(shape)
    out, d = run("random_erasing", x, {"p": 0.8, "value": value, "scale": [0.05, 0.4]}, seed=4)
    assert 0 < int(d["applied"].sum()) < shape[0]
    c = shape[1]
    for i in range(shape[0]):
        if not d["applied"][i]:
            torch.testing.assert_close(out[i], x[i], atol=0, rtol=0)
            continue
        top, left, h, w = d["box"][i].tolist()
        if value == "zeros":
            v = torch.zeros(c, 1, 1)
        elif value == "random":
            v = d["noise"][i][:, top:top + h, left:left + w]
        else:
            mean = (0.485, 0.456, 0.406) if c == 3 else (sum((0.485, 0.456, 0.406)) / 3,)
            v = torch.tensor(mean).view(-1, 1, 1)
        torch.testing.assert_close(out[i], F.erase(x[i], top, left, h, w, v), atol=0, rtol=0)


def devries_cutout(img: torch.Tensor, centres, length: int, fill: float) -> torch.Tensor:
    """The reference code of DeVries & Taylor (uoguelph-mlrg/Cutout, util/cutout.py), with the
    random centres passed in; `fill` generalises their multiplication by the zero mask."""
    h, w = img.size(1), img.size(2)
    mask = np.ones((h, w), np.float32)
    for y, x in centres:
        y1 = np.clip(y - length // 2, 0, h)
        y2 = np.clip(y + length // 2, 0, h)
        x1 = np.clip(x - length // 2, 0, w)
        x2 = np.clip(x + length // 2, 0, w)
        mask[y1:y2, x1:x2] = 0.0
    mask = torch.from_numpy(mask).expand_as(img)
    return img * mask + fill * (1 - mask)


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("n_holes,size,fill", [(1, 0.5, 0.0), (3, 0.3, 0.6), (2, 0.22, 0.0)])  # even and odd lengths
def test_cutout(shape, n_holes, size, fill):
    x = images(shape)
    out, d = run("cutout", x, {"n_holes": n_holes, "size": size, "fill": fill, "p": 0.7}, seed=5)
    assert 0 < int(d["applied"].sum()) < shape[0]
    length = int(d["length"][0])
    assert length == max(1, round(size * min(shape[2:])))
    for i in range(shape[0]):
        centres = list(zip(d["centre_y"][i].tolist(), d["centre_x"][i].tolist())) if d["applied"][i] else []
        close(out[i], devries_cutout(x[i], centres, length, fill), atol=0)


# ---- sampling follows torchvision's rules -------------------------------------------------------
# Our draws come from a batch generator, torchvision's from the global one, so the comparisons
# are on many draws: ranges exactly, means to within sampling error.

DRAWS = 3000


def tv_draws(transform, shape, count, seed=0):
    torch.manual_seed(seed)
    img = torch.zeros(shape)
    return [transform.make_params([img]) for _ in range(count)]


def test_rrc_boxes_follow_scale_and_ratio():
    h, w, scale, ratio = 30, 48, (0.2, 0.8), (0.5, 2.0)
    _, d = run("random_resized_crop", torch.zeros(DRAWS, 1, h, w), {"scale": list(scale), "ratio": list(ratio)})
    top, left, bh, bw = d["box"].double().unbind(1)
    assert (top >= 0).all() and (left >= 0).all() and (top + bh <= h).all() and (left + bw <= w).all()
    # Sides are rounded: some unrounded pair within half a pixel must meet the bounds.
    area = h * w
    assert ((bw - 0.5) * (bh - 0.5) <= scale[1] * area).all() and ((bw + 0.5) * (bh + 0.5) >= scale[0] * area).all()
    assert ((bw - 0.5) / (bh + 0.5) <= ratio[1]).all() and ((bw + 0.5) / (bh - 0.5) >= ratio[0]).all()
    # every position is reachable: the crop's top takes its extreme values
    small = bh < h // 2
    assert (top[small] == 0).any() and (top[small] == h - bh[small]).any()


def test_rrc_matches_torchvision_distribution():
    # An asymmetric ratio range on a non-square image: reading the ratio as h/w instead of w/h,
    # or dropping the retries, moves these means far beyond their sampling error.
    h, w, scale, ratio = 30, 48, (0.3, 1.0), (1.5, 4.0)
    _, d = run("random_resized_crop", torch.zeros(DRAWS, 1, h, w), {"scale": list(scale), "ratio": list(ratio)})
    ours = d["box"].double()
    tv = torch.tensor([[p["top"], p["left"], p["height"], p["width"]]
                       for p in tv_draws(v2.RandomResizedCrop(16, scale=scale, ratio=ratio), (1, h, w), DRAWS)]).double()
    assert (ours.mean(0) - tv.mean(0)).abs().max() < 0.6, (ours.mean(0), tv.mean(0))
    fallback_ours = (ours[:, 2:] == torch.tensor([h, 48.0])).all(1).double().mean()
    fallback_tv = (tv[:, 2:] == torch.tensor([h, 48.0])).all(1).double().mean()
    assert abs(fallback_ours - fallback_tv) < 0.03


@pytest.mark.parametrize("h,w", [(10, 100), (100, 10)])
def test_rrc_fallback_is_torchvisions_central_crop(h, w):
    # Scale near 1 on an extreme shape: no try can fit, so both fall back to the largest central
    # crop within the ratio range (cut from the long side's middle).
    _, d = run("random_resized_crop", torch.zeros(4, 1, h, w), {"scale": [0.99, 1.0], "ratio": [0.5, 2.0]})
    tv = v2.RandomResizedCrop(8, scale=(0.99, 1.0), ratio=(0.5, 2.0)).make_params([torch.zeros(1, h, w)])
    assert d["box"].tolist() == [[tv["top"], tv["left"], tv["height"], tv["width"]]] * 4


def test_erasing_boxes_strictly_inside_and_distributed_like_torchvision():
    h, w, scale, ratio = 30, 48, (0.1, 0.6), (1.5, 4.0)
    params = {"p": 1.0, "scale": list(scale), "ratio": list(ratio)}
    _, d = run("random_erasing", torch.zeros(DRAWS, 1, h, w), params)
    ok = d["applied"]
    top, left, bh, bw = d["box"][ok].double().unbind(1)
    assert (bh < h).all() and (bw < w).all() and (top >= 0).all() and (left >= 0).all()
    assert (top + bh <= h).all() and (left + bw <= w).all()
    tv = [p for p in tv_draws(v2.RandomErasing(p=1.0, scale=scale, ratio=ratio), (1, h, w), DRAWS) if p["v"] is not None]
    tv = torch.tensor([[p["i"], p["j"], p["h"], p["w"]] for p in tv]).double()
    ours = torch.stack((top, left, bh, bw), 1)
    assert (ours.mean(0) - tv.mean(0)).abs().max() < 0.6, (ours.mean(0), tv.mean(0))
    assert abs(ok.double().mean().item() - len(tv) / DRAWS) < 0.03  # same share of draws that fit


@pytest.mark.parametrize("h,w", [(24, 24), (19, 31)])
def test_perspective_corners_have_torchvisions_range(h, w, monkeypatch):
    # 0.75 on a side of 19: int(0.75 * (19 // 2)) = 6 where int(0.75 * 19 / 2) would be 7
    _, d = run("perspective", torch.zeros(DRAWS, 1, h, w), {"p": 1.0, "distortion": 0.75})
    ours = d["end"].long()
    # make_params returns only the solved coefficients; keep its endpoints instead (and skip
    # thousands of slow least-squares solves)
    monkeypatch.setattr(v2._geometry, "_get_perspective_coeffs", lambda start, end: end)
    tv = torch.tensor([p["coefficients"] for p in tv_draws(v2.RandomPerspective(0.75, p=1.0), (1, h, w), DRAWS)])
    assert torch.equal(ours.amin(0), tv.amin(0)) and torch.equal(ours.amax(0), tv.amax(0))
    assert d["start"][0].tolist() == [[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]]


def test_affine_draws_have_torchvisions_range():
    h, w = 19, 31
    params = {"degrees": [-30, 10], "translate_x": 0.2, "translate_y": 0.1, "scale": [0.8, 1.2],
              "shear_x": [-5, 5], "shear_y": [2, 3]}
    _, d = run("affine", torch.zeros(DRAWS, 1, h, w), params)
    tv = tv_draws(v2.RandomAffine((-30, 10), (0.2, 0.1), (0.8, 1.2), (-5, 5, 2, 3)), (1, h, w), DRAWS)
    tx, ty = torch.tensor([p["translate"] for p in tv]).unbind(1)
    assert set(d["tx"].long().tolist()) == set(tx.tolist())  # whole pixels, same extremes
    assert set(d["ty"].long().tolist()) == set(ty.tolist())
    for key, lo, hi in [("angle", -30, 10), ("scale", 0.8, 1.2), ("shear_x", -5, 5), ("shear_y", 2, 3)]:
        v = d[key]
        assert lo <= v.min() and v.max() <= hi and v.max() - v.min() > 0.95 * (hi - lo)


def test_color_jitter_orders_and_factors():
    _, d = run("color_jitter", torch.zeros(DRAWS, 3, 2, 2), {"brightness": 0.3, "contrast": 1.0, "hue": 0.2})
    orders = {tuple(o) for o in d["order"].tolist()}
    assert orders == set(itertools.permutations(range(4)))  # every order, as torch.randperm(4)
    assert d["brightness"].min() >= 0.7 and d["brightness"].max() <= 1.3
    assert d["contrast"].min() >= 0.0 and d["contrast"].max() <= 2.0  # max(0, 1 - c) as torchvision
    assert d["hue"].min() >= -0.2 and d["hue"].max() <= 0.2 and d["hue"].mean().abs() < 0.01


def test_cutout_centres_cover_the_image():
    h, w = 7, 5
    _, d = run("cutout", torch.zeros(DRAWS, 1, h, w), {"n_holes": 2})
    assert set(d["centre_y"].flatten().tolist()) == set(range(h))
    assert set(d["centre_x"].flatten().tolist()) == set(range(w))
    counts = torch.bincount(d["centre_y"].flatten(), minlength=h).double()
    assert (counts / counts.mean() - 1).abs().max() < 0.15  # uniform, like np.random.randint(h)


def test_pad_crop_windows_cover_every_offset():
    _, d = run("pad_crop", torch.zeros(DRAWS, 1, 8, 8), {"padding": 4})
    assert set(d["box"][:, 0].tolist()) == set(range(-4, 5))  # RandomCrop: randint(0, 2 * pad + 1)
    assert set(d["box"][:, 1].tolist()) == set(range(-4, 5))


def test_gaussian_blur_sigma_range():
    _, d = run("gaussian_blur", torch.zeros(DRAWS, 1, 8, 8), {"sigma": [0.5, 3.0]})
    assert 0.5 <= d["sigma"].min() and d["sigma"].max() <= 3.0
    assert math.isclose(d["sigma"].mean().item(), 1.75, abs_tol=0.05)


# ---- noise --------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("sigma", [0.05, 0.3])
def test_gaussian_noise_matches_torchvision_given_the_same_noise(shape, sigma, monkeypatch):
    x = images(shape)
    ours, drawn = run("gaussian_noise", x, {"sigma": sigma, "p": 1.0})
    for i in range(shape[0]):
        # torchvision draws its noise with randn_like; handed the noise we drew, its kernel must agree
        monkeypatch.setattr(torch, "randn_like", lambda t, i=i: drawn["noise"][i].to(t.dtype))
        close(ours[i], F.gaussian_noise(x[i], mean=0.0, sigma=sigma, clip=True))
    assert drawn["noise"].shape == shape and abs(float(drawn["noise"].std()) - 1) < 0.05


def test_gaussian_noise_leaves_the_images_p_spares_alone():
    x = images((40, 3, 8, 8))
    out, drawn = run("gaussian_noise", x, {"sigma": 0.2, "p": 0.5})
    spared = ~drawn["applied"]
    assert 5 < int(spared.sum()) < 35
    assert torch.equal(out[spared], x[spared]) and not torch.equal(out[~spared], x[~spared])
