"""Properties of every declared augmentation and of the Pipeline around them.

Each op is run at its low, default and high settings (Op.extremes) on colour and gray batches,
including a 3x2 image; then the pipeline's seeding, validation, JSON form, editing and both
code exports. Comparisons with torchvision's kernels live in test_kernels.py.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from core.augment import REGISTRY, AugmentError, Pipeline, Step, get_op, load_json
from core.augment import pipeline as pipeline_module

OPS = sorted(REGISTRY)
POLICIES = sorted(name for name, op in REGISTRY.items() if op.group == "policy")
WITH_P = sorted(name for name, op in REGISTRY.items() if any(p.name == "p" for p in op.params))
SHAPES = {"rgb": (3, 3, 16, 20), "gray": (3, 1, 16, 20), "rgb_tiny": (3, 3, 3, 2), "gray_tiny": (3, 1, 3, 2)}


def batch(shape, seed=0):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def apply_op(name, x, params, seed=0):
    return Pipeline.of((name, params)).apply(x, torch.Generator().manual_seed(seed))


def expected_size(name, prm, h, w):
    if name == "random_resized_crop" and prm["size"]:
        return prm["size"], prm["size"]
    if name == "pad_crop" and prm["size"]:
        # the window cannot be larger than the padded image
        return min(prm["size"], h + 2 * prm["padding"]), min(prm["size"], w + 2 * prm["padding"])
    return h, w


def with_half_p(name, params=None):
    """Params where an op with a probability fires about half the time (so images differ)."""
    params = dict(params or {})
    if name in WITH_P:
        params["p"] = 0.5
    return params


# ---- every op at every setting ------------------------------------------------------------------


@pytest.mark.parametrize("shape_id", list(SHAPES))
@pytest.mark.parametrize("name", OPS)
def test_every_op_at_low_default_high(name, shape_id):
    x = batch(SHAPES[shape_id])
    n, c, h, w = x.shape
    for level, prm in get_op(name).extremes().items():
        out, records = apply_op(name, x, prm)
        where = f"{name} at {level} {prm} on {shape_id}"
        assert out.shape == (n, c, *expected_size(name, prm, h, w)), where
        assert out.dtype == x.dtype, where
        assert torch.isfinite(out).all(), where
        assert out.min() >= 0 and out.max() <= 1, where
        for key, value in records[0]["drawn"].items():  # the Sampler contract: one row per image
            assert isinstance(value, torch.Tensor) and value.shape[0] == n, (where, key)
        for i in range(n):
            (line,) = Pipeline.describe(records, i)
            assert line.startswith(get_op(name).label), where


def test_extremes_are_valid_and_span_the_declared_ranges():
    for name, op in REGISTRY.items():
        ext = op.extremes()
        assert ext["default"] == op.validate({}), name
        for p in op.params:
            if p.kind in ("float", "int"):
                assert (ext["low"][p.name], ext["high"][p.name]) == (p.low, p.high), (name, p.name)
            assert p.help, f"{name}.{p.name} needs a help text for its slider"


@pytest.mark.parametrize("name", WITH_P)
def test_p_zero_is_identity(name):
    x = batch((6, 3, 16, 20))
    for level, prm in get_op(name).extremes().items():
        out, _ = apply_op(name, x, {**prm, "p": 0.0})
        assert torch.equal(out, x), f"{name} at {level} with p=0 changed the images"


@pytest.mark.parametrize("name", OPS)
def test_same_seed_same_output_other_seed_differs(name):
    x = batch((4, 3, 12, 14))
    params = with_half_p(name)
    a, rec_a = apply_op(name, x, params, seed=7)
    b, rec_b = apply_op(name, x, params, seed=7)
    c, _ = apply_op(name, x, params, seed=8)
    assert torch.equal(a, b)
    assert [Pipeline.describe(rec_a, i) for i in range(4)] == [Pipeline.describe(rec_b, i) for i in range(4)]
    assert not torch.equal(a, c), f"{name}: seeds 7 and 8 gave the same batch"


@pytest.mark.parametrize("channels", [3, 1])
@pytest.mark.parametrize("name", OPS)
def test_each_image_draws_its_own_parameters(name, channels):
    if name == "grayscale" and channels == 1:
        pytest.skip("the luma of a gray image is the image itself")
    one = batch((1, channels, 16, 20))
    n = 4 if name in POLICIES else 12  # policies run image by image through torchvision: slow
    x = one.expand(n, -1, -1, -1).contiguous()
    out, records = apply_op(name, x, with_half_p(name), seed=3)
    distinct = {tuple(out[i].flatten().tolist()) for i in range(n)}
    assert len(distinct) > 1, f"{name}: {n} copies of one image came out identical"
    assert len({tuple(Pipeline.describe(records, i)) for i in range(n)}) > 1


def test_large_images_run_image_by_image_with_the_same_result(monkeypatch):
    # On CPU a batch of large images is processed a few images at a time (cache-friendly);
    # the draws are made for the whole batch first, so the split must not change any pixel.
    x = batch((5, 3, 18, 22))
    # policies run image by image anyway; one of them is enough here (AugMix is slow)
    names = [name for name in OPS if name not in POLICIES] + ["trivialaugment"]
    pipeline = Pipeline.from_list([{"op": name, "params": with_half_p(name)} for name in names])
    whole, records = pipeline.apply(x, torch.Generator().manual_seed(4))
    monkeypatch.setattr(pipeline_module, "CHUNK_ELEMENTS", 2 * x[0].numel())  # chunks of 2, 2, 1
    split, split_records = pipeline.apply(x, torch.Generator().manual_seed(4))
    assert torch.equal(whole, split)
    assert [Pipeline.describe(records, i) for i in range(5)] == [Pipeline.describe(split_records, i) for i in range(5)]


MOVERS = sorted(name for name, op in REGISTRY.items() if op.moves_pixels)


def test_ops_that_move_pixels_are_the_flips_and_the_padded_crop():
    assert MOVERS == ["hflip", "pad_crop", "vflip"]


def test_colorjitter_is_the_op_that_takes_bytes():
    # it gathers its batch before computing, so it gathers bytes and converts them itself
    assert sorted(name for name, op in REGISTRY.items() if op.takes_bytes) == ["color_jitter"]


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
@pytest.mark.parametrize("chunked", [False, True], ids=["whole", "chunked"])
def test_uint8_batches_give_the_floats_of_converting_first(monkeypatch, mode, chunked):
    # A trainer hands its uint8 batch over: the flips and padded crops in front run on the
    # bytes, the rest on floats; every pixel and every draw must be those of converting first.
    pixels = torch.randint(0, 256, (5, 3, 18, 22), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    if chunked:
        monkeypatch.setattr(pipeline_module, "CHUNK_ELEMENTS", 2 * pixels[0].numel())  # chunks of 2, 2, 1
    steps = [("hflip", {"p": 0.5}), ("vflip", {"p": 0.5}), ("pad_crop", {"padding": 5, "padding_mode": mode}),
             ("color_jitter", {}), ("hflip", {"p": 0.5}), ("cutout", {"size": 0.3})]
    # only pixel moves; then ColorJitter (which converts the bytes itself), and more after it;
    # ColorJitter first, with and without adjustments of strength 0, and with none to make
    pipelines = [Pipeline.of(*steps[:count]) for count in (2, 3, 4, len(steps))] + [
        Pipeline.of(*steps[3:]), Pipeline.of(("color_jitter", {"contrast": 0.0, "hue": 0.3}), "cutout"),
        Pipeline.of(("color_jitter", {"brightness": 0.0, "contrast": 0.0, "saturation": 0.0, "hue": 0.0}))]
    for k, pipeline in enumerate(pipelines):
        first, records = pipeline.apply(pixels.float().div(255), torch.Generator().manual_seed(7))
        on_bytes, byte_records = pipeline.apply(pixels, torch.Generator().manual_seed(7))
        assert on_bytes.dtype == torch.float32
        assert torch.equal(first, on_bytes), f"pipeline {k}"
        assert [Pipeline.describe(records, i) for i in range(5)] == [Pipeline.describe(byte_records, i) for i in range(5)]
    assert torch.equal(Pipeline().apply(pixels, torch.Generator())[0], pixels.float().div(255))


def test_preview_returns_its_own_memory():
    image = batch((1, 3, 8, 8))[0]
    grid, _ = Pipeline.of(("hflip", {"p": 0.0})).preview(image, n=3)
    assert grid.is_contiguous() and grid.stride(0) > 0  # not three views of one picture
    grid[0].zero_()
    assert torch.equal(grid[1], image) and image.abs().sum() > 0


@pytest.mark.parametrize("name", OPS)
def test_a_tile_alone_is_the_grids_tile(name):
    image = batch((1, 3, 24, 30), seed=3)[0]
    pipeline = Pipeline.of("hflip", (name, with_half_p(name)), "cutout")
    grid, records = pipeline.preview(image, n=5, seed=9)
    for i in range(5):
        tile, tile_records = pipeline.preview_tile(image, 5, 9, i)
        assert torch.equal(tile, grid[i]), (name, i)
        assert Pipeline.describe(tile_records, i) == Pipeline.describe(records, i)
    with pytest.raises(AugmentError, match="tile 6 is not in a grid of 5"):
        pipeline.preview_tile(image, 5, 9, 5)


def test_pixel_values_scale_with_the_picture_and_fractions_do_not():
    pipeline = Pipeline.of(("pad_crop", {"padding": 8, "size": 0}), ("random_resized_crop", {"size": 64}),
                           ("gaussian_blur", {"kernel_size": 9, "sigma": (1.0, 4.0)}),
                           ("cutout", {"size": 0.25}), ("affine", {"translate_x": 0.2}))
    half = [s.params for s in pipeline.scaled(0.5).steps]
    assert half[0] == {"padding": 4, "padding_mode": "constant", "size": 0}  # 0 still keeps the input size
    assert half[1]["size"] == 32 and half[1]["scale"] == (0.1, 1.0)
    assert half[2] == {"kernel_size": 5, "sigma": (0.5, 2.0)}
    assert half[3] == pipeline.steps[3].params and half[4] == pipeline.steps[4].params
    tiny = [s.params for s in pipeline.scaled(0.01).steps]
    assert tiny[0]["padding"] == 1 and tiny[1]["size"] == 1 and tiny[2]["kernel_size"] == 3  # kept positive, in range
    assert tiny[2]["sigma"] == (0.01, 0.04)
    for step in pipeline.scaled(0.37).steps:
        assert get_op(step.op).validate(step.params) == step.params


def test_tiles_at_a_smaller_side_draw_what_the_full_size_tile_draws():
    """The grid computed at the size it is shown: each tile looks like its full-size tile shrunk."""
    from core.augment.pipeline import shrink

    yy, xx = torch.meshgrid(torch.linspace(0, 1, 96), torch.linspace(0, 1, 128), indexing="ij")
    image = torch.stack((yy, xx, (yy * xx).sqrt()))  # smooth, so shrinking changes little by itself
    pipeline = Pipeline.of("hflip", ("pad_crop", {"padding": 16}), ("random_resized_crop", {"scale": (0.3, 1.0)}),
                           "color_jitter", ("cutout", {"size": 0.3}))
    grid, records = pipeline.preview(image, n=6, seed=2, side=32)
    assert grid.shape == (6, 3, 24, 32)
    other_seed, unused = pipeline.preview(image, n=6, seed=3, side=32)
    for i in range(6):
        full, unused = pipeline.preview_tile(image, 6, 2, i)
        assert full.shape == (3, 96, 128)
        same = (shrink(full, 32) - grid[i]).abs().mean()
        assert same < 0.05, (i, same)
        assert same < (shrink(full, 32) - other_seed[i]).abs().mean()  # closer than another draw
    # a side at least the picture's computes at full size
    assert torch.equal(pipeline.preview(image, n=6, seed=2, side=128)[0], pipeline.preview(image, n=6, seed=2)[0])


@pytest.mark.parametrize("name", POLICIES)
def test_policies_are_seeded_per_image_and_change_images(name):
    x = batch((8, 3, 12, 14))
    a, rec = apply_op(name, x, {}, seed=11)
    b, _ = apply_op(name, x, {}, seed=11)
    assert torch.equal(a, b)  # each image's torchvision draw is seeded from our generator
    seeds = rec[0]["drawn"]["seed"]
    assert len(set(seeds.tolist())) == 8
    # beyond uint8 rounding; AutoAugment's sub-policies often skip both of their ops, hence a quarter
    changed = [(a[i] - x[i]).abs().max() > 2 / 255 for i in range(8)]
    assert sum(changed) >= 2, f"{name} left (nearly) every image unchanged"
    # the policy must not touch torch's global generator: training code relies on it elsewhere
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    apply_op(name, x[:2], {}, seed=11)
    assert torch.equal(torch.rand(3), expected)


def test_random_erasing_mean_comes_from_the_context():
    x = batch((16, 3, 12, 12))
    step = Pipeline.of(("random_erasing", {"p": 1.0, "value": "mean"}))
    out, rec = step.apply(x, torch.Generator().manual_seed(0), {"mean": (0.1, 0.2, 0.3)})
    i = int(torch.nonzero(rec[0]["drawn"]["applied"])[0])
    top, left, _, _ = rec[0]["drawn"]["box"][i].tolist()
    assert torch.allclose(out[i, :, top, left], torch.tensor([0.1, 0.2, 0.3]))


# ---- pipeline: composition, validation, JSON, editing ------------------------------------------


def test_pipeline_applies_enabled_steps_in_order():
    x = batch((4, 3, 10, 12))
    g = torch.Generator().manual_seed(0)
    out, records = Pipeline.of(("hflip", {"p": 1.0}), ("vflip", {"p": 1.0})).apply(x, g)
    assert torch.equal(out, x.flip(-1).flip(-2))
    assert [r["op"] for r in records] == ["hflip", "vflip"]
    disabled = Pipeline.of(("hflip", {"p": 1.0}), ("vflip", {"p": 1.0})).updated(1, enabled=False)
    out, records = disabled.apply(x, torch.Generator().manual_seed(0))
    assert torch.equal(out, x.flip(-1)) and [r["op"] for r in records] == ["hflip"]


@pytest.mark.parametrize(
    "items,needles",
    [
        ([{"op": "hflp"}], ["hflp", "unknown augmentation"]),
        ([{"op": "hflip", "params": {"q": 0.5}}], ["hflip", "'q'", "unknown parameter"]),
        ([{"op": "hflip", "params": {"p": 1.5}}], ["hflip.p", "1.5", "out of range"]),
        ([{"op": "hflip", "params": {"p": "high"}}], ["hflip.p", "must be a number"]),
        ([{"op": "hflip", "params": {"p": True}}], ["hflip.p", "must be a number"]),
        ([{"op": "cutout", "params": {"n_holes": 1.5}}], ["cutout.n_holes", "whole number"]),
        ([{"op": "pad_crop", "params": {"padding_mode": "wrap"}}], ["pad_crop.padding_mode", "'wrap'"]),
        ([{"op": "rotation", "params": {"degrees": 10}}], ["rotation.degrees", "pair"]),
        ([{"op": "rotation", "params": {"degrees": [20, -20]}}], ["rotation.degrees", "must not exceed"]),
        ([{"op": "rotation", "params": {"degrees": [float("nan"), 1]}}], ["rotation.degrees", "finite"]),
        ([{"op": "perspective", "params": {"interpolation": "bicubic"}}], ["perspective.interpolation", "bicubic"]),
        ([{"op": "grayscale", "params": {"p": 0.5}, "enable": True}], ["step 1", "'enable'"]),
        ([{"op": "grayscale", "enabled": "yes"}], ["step 1", "enabled"]),
        ([{"params": {}}], ["step 1", "'op'"]),
        ([{"op": "hflip"}, "vflip"], ["step 2", "'vflip'"]),
        ({"op": "hflip"}, ["must be a list"]),
    ],
)
def test_invalid_pipelines_name_the_problem(items, needles):
    with pytest.raises(AugmentError) as err:
        Pipeline.from_list(items)
    for needle in needles:
        assert needle in str(err.value), (needle, str(err.value))


@pytest.mark.parametrize(
    "text,needles",
    [
        ("{steps: [", ["not valid JSON"]),
        (b"\xff\xfe", ["not valid JSON"]),
        ('{"steps": [], "sed": 1}', ["'sed'", "unknown key"]),
        ('{"seed": 1}', ["no 'steps'"]),
        ('{"steps": [], "seed": -1}', ["'seed'"]),
        ('{"steps": [], "seed": 1.5}', ["'seed'"]),
        ('{"steps": [{"op": "zoom"}]}', ["'zoom'"]),
        ('"hflip"', ["must be a list"]),
    ],
)
def test_invalid_json_names_the_problem(text, needles):
    with pytest.raises(AugmentError) as err:
        load_json(text)
    for needle in needles:
        assert needle in str(err.value), (needle, str(err.value))


def every_op_pipeline(level="high"):
    return Pipeline.from_list([{"op": name, "params": get_op(name).extremes()[level]} for name in OPS])


@pytest.mark.parametrize("level", ["low", "default", "high"])
def test_json_round_trip(level):
    pipeline = every_op_pipeline(level).updated(2, enabled=False)
    text = pipeline.to_json(seed=42)
    assert json.loads(text)["seed"] == 42
    again, seed = load_json(text)
    assert again == pipeline and seed == 42
    assert Pipeline.from_json(pipeline.to_json()) == pipeline
    assert Pipeline.from_list(json.loads(json.dumps(pipeline.to_list()))) == pipeline
    assert load_json(json.dumps(pipeline.to_list())) == (pipeline, None)  # a bare list of steps


def test_defaults_are_filled_in_and_stored():
    pipeline = Pipeline.from_list([{"op": "cutout", "params": {"size": 0.25}}])
    assert pipeline.steps[0].params == {**get_op("cutout").defaults(), "size": 0.25}
    assert pipeline.to_list() == [{"op": "cutout", "params": {**get_op("cutout").defaults(), "size": 0.25}, "enabled": True}]


def test_editing_returns_new_pipelines():
    base = Pipeline.empty().added("hflip").added("cutout", {"size": 0.3}).added("grayscale")
    assert [s.op for s in base.steps] == ["hflip", "cutout", "grayscale"]
    assert [s.op for s in base.removed(1).steps] == ["hflip", "grayscale"]
    assert [s.op for s in base.moved(0, 1).steps] == ["cutout", "hflip", "grayscale"]
    assert [s.op for s in base.moved(2, -2).steps] == ["grayscale", "cutout", "hflip"]
    assert base.moved(0, -1) == base and base.moved(2, 1) == base  # past either end: unchanged
    updated = base.updated(1, {"size": 0.6, "n_holes": 2})
    assert updated.steps[1].params["size"] == 0.6 and updated.steps[1].params["n_holes"] == 2
    assert updated.steps[1].params["p"] == get_op("cutout").defaults()["p"]  # omitted -> default
    disabled = base.updated(2, enabled=False)
    assert not disabled.steps[2].enabled and disabled.steps[2].params == base.steps[2].params
    assert [s.op for s in disabled.active] == ["hflip", "cutout"]
    assert [s.op for s in base.steps] == ["hflip", "cutout", "grayscale"]  # the original is untouched
    with pytest.raises(AugmentError, match="cutout.size"):
        base.updated(1, {"size": 5.0})
    with pytest.raises(AugmentError, match="'blur'"):
        base.added("blur")
    assert Step.make("hflip") == Step("hflip", {"p": 0.5}, True)


def test_apply_rejects_a_single_image():
    with pytest.raises(AugmentError, match="batch"):
        Pipeline.of("hflip").apply(torch.rand(3, 8, 8), torch.Generator())


# ---- code exports -------------------------------------------------------------------------------


def test_torchvision_export_runs_every_op():
    pipeline = every_op_pipeline("default")
    code = pipeline.to_torchvision_code((24, 20))
    assert "class Cutout" in code
    namespace = {}
    exec(compile(code, "<export>", "exec"), namespace)
    pil = Image.fromarray(np.random.default_rng(0).integers(0, 256, (24, 20, 3), dtype=np.uint8))
    torch.manual_seed(0)
    out = namespace["transform"](pil)
    assert isinstance(out, torch.Tensor) and out.shape == (3, 24, 20) and out.dtype == torch.float32


def test_torchvision_export_of_output_sizes_and_empty_pipeline():
    namespace = {}
    exec(Pipeline.of(("random_resized_crop", {"size": 16}), ("pad_crop", {"size": 12})).to_torchvision_code((30, 40)), namespace)
    pil = Image.fromarray(np.zeros((30, 40, 3), dtype=np.uint8))
    assert namespace["transform"](pil).shape == (3, 12, 12)
    exec(Pipeline.empty().to_torchvision_code((30, 40)), namespace)
    assert namespace["transform"](pil).shape == (3, 30, 40)


def test_torchvision_export_cutout_matches_reference_extent():
    # one hole at a known centre: the helper must cut the same square as our op
    namespace = {}
    exec(Pipeline.of(("cutout", {"size": 0.5})).to_torchvision_code((10, 10)), namespace)
    cutout = namespace["Cutout"](n_holes=1, length=5, fill=0.0, p=1.0)
    torch.manual_seed(0)
    torch.rand(1)  # the helper's draw against p comes first
    y, x = int(torch.randint(10, (1,))), int(torch.randint(10, (1,)))
    torch.manual_seed(0)
    out = cutout(torch.ones(1, 10, 10))
    expected = torch.ones(1, 10, 10)
    expected[:, max(0, y - 2):y + 2, max(0, x - 2):x + 2] = 0  # DeVries & Taylor: y - L//2 .. y + L//2
    assert torch.equal(out, expected)


def test_core_export_reproduces_the_preview(tmp_path, monkeypatch):
    images = pytest.importorskip("core.data.images")  # written by another helper
    path = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(path)
    pipeline = Pipeline.of("hflip", "random_resized_crop", "color_jitter", "cutout", "randaugment")
    code = pipeline.to_core_code(seed=5, n=4, image_path=str(path), max_side=32)
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, "<export>", "exec"), namespace)
    expected, _ = pipeline.preview(images.load_image(str(path), max_side=32).tensor, n=4, seed=5)
    assert torch.equal(namespace["grid"], expected)
    assert namespace["grid"].shape[0] == 4 and max(namespace["grid"].shape[-2:]) == 32
    code = pipeline.to_core_code(seed=5, n=4, image_path=str(path), max_side=32, side=16)
    exec(compile(code, "<export>", "exec"), namespace)
    assert max(namespace["grid"].shape[-2:]) == 16
    assert torch.equal(namespace["grid"], pipeline.preview(images.load_image(str(path), max_side=32).tensor, n=4,
                                                           seed=5, side=16)[0])
