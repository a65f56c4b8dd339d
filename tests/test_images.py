"""core/data/images.py and core/data/samples.py: every supported format and mode, every bad input, the
drawing helpers, and the preview geometry. All pictures are generated here with PIL; PIL's own
decoding and torchvision's kernels are the references."""
import io
import time

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps
from torchvision.transforms.v2 import functional as TF

from conftest import png_header_only
from core.augment import Pipeline
from core.data import samples
from core.data.images import (
    MAX_PIXELS,
    ImageError,
    beta_density,
    crop_boxes,
    draw_boxes,
    load_image,
    make_grid_image,
    square_batch,
    to_pil,
    to_png_bytes,
    to_uint8,
)


def gradient(w=64, h=48) -> np.ndarray:
    """An RGB picture whose every pixel differs, so a flip, a rotation or a shift shows."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // max(1, w - 1), y * 255 // max(1, h - 1), (x + 2 * y) % 256], -1).astype(np.uint8)


def encode(im: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    im.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def as_array(loaded) -> np.ndarray:
    return to_uint8(loaded.tensor)


# ---- formats -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "TIFF", "WEBP"])
def test_lossless_formats_decode_exactly(fmt):
    pixels = gradient()
    options = {"lossless": True} if fmt == "WEBP" else {}
    loaded = load_image(encode(Image.fromarray(pixels), fmt, **options))
    assert loaded.tensor.dtype == torch.float32 and loaded.tensor.shape == (3, 48, 64)
    assert np.array_equal(as_array(loaded), pixels)
    assert loaded.original_size == (64, 48) and loaded.notes == ()


def test_jpeg_matches_pil_decode():
    data = encode(Image.fromarray(gradient()), "JPEG", quality=90)
    expected = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert np.array_equal(as_array(load_image(data)), expected)


def test_tiny_image():
    pixels = gradient(3, 2)
    loaded = load_image(encode(Image.fromarray(pixels), "PNG"))
    assert loaded.tensor.shape == (3, 2, 3)
    assert torch.equal(loaded.tensor, torch.from_numpy(pixels).permute(2, 0, 1).float() / 255)


def test_sources_bytes_path_and_file_agree(tmp_path):
    data = encode(Image.fromarray(gradient()), "PNG")
    path = tmp_path / "photo.png"
    path.write_bytes(data)
    reference = load_image(data).tensor
    assert torch.equal(load_image(str(path)).tensor, reference)
    assert torch.equal(load_image(path).tensor, reference)
    assert torch.equal(load_image(io.BytesIO(data)).tensor, reference)


def test_animated_gif_uses_first_frame():
    frames = [Image.new("RGB", (20, 10), colour) for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    loaded = load_image(buffer.getvalue())
    assert loaded.tensor.shape == (3, 10, 20)
    assert torch.allclose(loaded.tensor[:, 0, 0], torch.tensor([1.0, 0.0, 0.0]))
    assert any("first frame of 3" in note for note in loaded.notes)


def test_downscale_long_side_with_antialiasing():
    # fine stripes alias badly without a low-pass filter; Lanczos averages them to mid-grey
    stripes = np.zeros((800, 1200, 3), np.uint8)
    stripes[:, ::2] = 255
    loaded = load_image(encode(Image.fromarray(stripes), "PNG"), max_side=512)
    assert loaded.tensor.shape == (3, 341, 512)
    assert loaded.original_size == (1200, 800)
    assert "downscaled from 1200x800 to 512x341 for the preview" in loaded.notes
    reference = np.asarray(Image.fromarray(stripes).resize((512, 341), Image.Resampling.LANCZOS), np.float64)
    assert abs(as_array(loaded).astype(np.float64) - reference).mean() < 3  # of 255
    assert abs(loaded.tensor.mean().item() - 0.5) < 0.02


def test_no_downscale_below_max_side_or_when_disabled():
    data = encode(Image.fromarray(gradient(600, 400)), "PNG")
    assert load_image(data, max_side=None).tensor.shape == (3, 400, 600)
    assert load_image(data, max_side=600).notes == ()


def test_large_jpeg_draft_decode_is_close_to_full_decode():
    big = Image.fromarray(gradient(2000, 1500))
    data = encode(big, "JPEG", quality=95)
    loaded = load_image(data, max_side=512)
    assert loaded.tensor.shape == (3, 384, 512)
    full = Image.open(io.BytesIO(data)).convert("RGB").resize((512, 384), Image.Resampling.LANCZOS)
    assert abs(as_array(loaded).astype(np.float64) - np.asarray(full, np.float64)).mean() < 3


@pytest.mark.parametrize("orientation, turn", [(3, 2), (6, -1), (8, 1)])
def test_exif_orientation_is_honoured(orientation, turn):
    pixels = gradient(40, 20)
    exif = Image.Exif()
    exif[0x0112] = orientation
    loaded = load_image(encode(Image.fromarray(pixels), "PNG", exif=exif))
    expected = np.rot90(pixels, k=turn)  # numpy turns counter-clockwise for positive k
    assert np.array_equal(as_array(loaded), expected)
    assert loaded.original_size == (expected.shape[1], expected.shape[0])
    assert any("EXIF orientation" in note for note in loaded.notes)


# ---- modes -------------------------------------------------------------------------------------


def test_grayscale_stays_one_channel():
    pixels = gradient()[..., 0]
    loaded = load_image(encode(Image.fromarray(pixels, "L"), "PNG"))
    assert loaded.tensor.shape == (1, 48, 64)
    assert np.array_equal(as_array(loaded), pixels)


def test_bilevel_image():
    pixels = (gradient()[..., 0] > 128).astype(np.uint8) * 255
    loaded = load_image(encode(Image.fromarray(pixels).convert("1"), "PNG"))
    assert loaded.tensor.shape == (1, 48, 64)
    assert set(loaded.tensor.unique().tolist()) == {0.0, 1.0}
    assert np.array_equal(as_array(loaded), pixels)


def test_16bit_grayscale_is_scaled_not_clipped():
    values = np.linspace(0, 65535, 64 * 48).reshape(48, 64).astype(np.uint16)
    loaded = load_image(encode(Image.fromarray(values), "PNG"))
    assert loaded.tensor.shape == (1, 48, 64)
    # a naive convert("L") would clip everything above 255 to white
    assert torch.allclose(loaded.tensor[0], torch.from_numpy(values / 65535).float(), atol=0.5 / 255 + 1e-6)
    assert "16-bit image converted to 8-bit" in loaded.notes


def test_float_image_in_unit_range_and_32bit_integer_image():
    values = np.linspace(0, 1, 64 * 48, dtype=np.float32).reshape(48, 64)
    loaded = load_image(encode(Image.fromarray(values, "F"), "TIFF"))
    assert torch.allclose(loaded.tensor[0], torch.from_numpy(values), atol=0.5 / 255 + 1e-6)
    wide = (np.arange(64 * 48).reshape(48, 64) * 1000 - 50000).astype(np.int32)
    loaded = load_image(encode(Image.fromarray(wide, "I"), "TIFF"))
    assert loaded.tensor.min() == 0 and loaded.tensor.max() == 1
    assert any("stretched from its range [-50000, " in note for note in loaded.notes)


def test_cmyk_converted_like_pil():
    cmyk = Image.fromarray(gradient()).convert("CMYK")
    loaded = load_image(encode(cmyk, "TIFF"))
    assert np.array_equal(as_array(loaded), np.asarray(cmyk.convert("RGB")))
    assert "CMYK converted to RGB" in loaded.notes


def test_palette_with_transparency_flattens_onto_white():
    im = Image.new("P", (8, 4), 0)
    im.putpalette([255, 0, 0] + [0, 0, 255] + [0] * 762)
    im.paste(1, (4, 0, 8, 4))  # right half: palette index 1 (blue), which is transparent
    im.info["transparency"] = 1
    loaded = load_image(encode(im, "PNG", transparency=1))
    pixels = as_array(loaded)
    assert (pixels[:, :4] == [255, 0, 0]).all() and (pixels[:, 4:] == [255, 255, 255]).all()
    assert "transparency flattened onto white" in loaded.notes


def test_rgba_alpha_blends_onto_white_and_opaque_rgba_has_no_note():
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[..., 0] = 200  # red-ish everywhere
    rgba[..., 3] = [[0, 128, 255], [255, 255, 255]]
    pixels = as_array(load_image(encode(Image.fromarray(rgba, "RGBA"), "PNG")))
    expected = Image.new("RGB", (3, 2), (255, 255, 255))
    expected.paste(Image.fromarray(rgba[..., :3]), mask=Image.fromarray(rgba[..., 3]))
    assert np.array_equal(pixels, np.asarray(expected))
    assert (pixels[0, 0] == 255).all() and tuple(pixels[0, 2]) == (200, 0, 0)
    rgba[..., 3] = 255
    assert load_image(encode(Image.fromarray(rgba, "RGBA"), "PNG")).notes == ()


def test_gray_with_alpha_stays_gray():
    la = Image.fromarray(np.stack([np.full((4, 4), 0, np.uint8), np.full((4, 4), 0, np.uint8)], -1), "LA")
    loaded = load_image(encode(la, "PNG"))
    assert loaded.tensor.shape == (1, 4, 4) and bool((loaded.tensor == 1).all())


# ---- bad input ---------------------------------------------------------------------------------


def test_empty_file():
    with pytest.raises(ImageError, match="the file is empty"):
        load_image(b"")


@pytest.mark.parametrize("data", [b"hello, this is a text file\n" * 10, b"\x00\x01\x02" * 100])
def test_not_an_image(data):
    with pytest.raises(ImageError, match="not an image"):
        load_image(data)


def test_svg_gets_a_specific_message():
    with pytest.raises(ImageError, match="SVG drawings are not supported"):
        load_image(b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"></svg>')


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_file(fmt):
    data = encode(Image.fromarray(gradient(200, 150)), fmt)
    with pytest.raises(ImageError, match="corrupt or truncated"):
        load_image(data[: len(data) // 2])


def test_unsupported_format():
    with pytest.raises(ImageError, match="PPM images are not supported; use JPEG, PNG"):
        load_image(encode(Image.fromarray(gradient()), "PPM"))


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="cannot read"):
        load_image(tmp_path / "nowhere.png")


def test_decompression_bomb_is_refused_from_the_header():
    data = png_header_only(30000, 30000)  # 900 MP declared in 100 bytes
    start = time.perf_counter()
    with pytest.raises(ImageError, match=r"image is 30000x30000 = 900 MP; the limit is 50 MP"):
        load_image(data)
    assert time.perf_counter() - start < 1  # refused before any attempt to decode


def test_image_just_over_our_limit_but_under_pils_is_refused():
    # PIL only warns up to 179 MP; the lab's own limit must catch this one
    width, height = 8000, 7000
    assert width * height > MAX_PIXELS
    with pytest.raises(ImageError, match=r"image is 8000x7000 = 56 MP; the limit is 50 MP"):
        load_image(png_header_only(width, height))


def test_image_errors_are_value_errors():
    assert issubclass(ImageError, ValueError)


# ---- pictures out ------------------------------------------------------------------------------


def test_png_round_trip_is_exact():
    # the page's "working picture" download plus the core-code export rely on this
    loaded = load_image(encode(Image.fromarray(gradient(700, 300)), "PNG"))
    again = load_image(to_png_bytes(loaded.tensor))
    assert torch.equal(again.tensor, loaded.tensor)
    gray = load_image(encode(Image.fromarray(gradient()[..., 1], "L"), "PNG"))
    assert torch.equal(load_image(to_png_bytes(gray.tensor)).tensor, gray.tensor)


def test_to_pil_modes():
    assert to_pil(torch.rand(3, 5, 7)).mode == "RGB" and to_pil(torch.rand(1, 5, 7)).mode == "L"
    assert to_pil(torch.rand(3, 5, 7)).size == (7, 5)
    with pytest.raises(ValueError, match="1 or 3 channels"):
        to_uint8(torch.rand(4, 5, 7))


def test_grid_image_places_every_tile():
    batch = torch.stack([torch.full((3, 10, 12), k / 10) for k in range(6)])
    sheet = make_grid_image(batch, nrow=4, padding=2)
    assert sheet.size == (2 + 4 * 14, 2 + 2 * 12)
    pixels = np.asarray(sheet)
    for k in range(6):
        x, y = 2 + (k % 4) * 14, 2 + (k // 4) * 12
        assert (pixels[y:y + 10, x:x + 12] == round(k / 10 * 255)).all()
    with_captions = make_grid_image(batch, nrow=4, captions=[[f"tile {k}", "second line"] for k in range(6)], padding=2)
    assert with_captions.size[1] > sheet.size[1] and with_captions.size[0] == sheet.size[0]
    grid_png = Image.open(io.BytesIO(to_png_bytes(batch, nrow=3)))
    assert grid_png.size == (4 + 3 * 16, 4 + 2 * 14)


def test_draw_boxes_outlines_and_clips():
    image = torch.zeros(3, 20, 30)
    canvas = np.asarray(draw_boxes(image, [(2, 3, 10, 12), (-5, 25, 10, 20)], width=1))
    assert (canvas[2, 3:15] != 0).any(axis=-1).all()  # top edge of the first box
    assert (canvas[6, 3] != 0).any() and (canvas[6, 14] != 0).any()
    assert (canvas[5:10, 5:12] == 0).all()  # inside stays untouched
    assert (canvas[0:4, 25] != 0).any(axis=-1).all()  # second box, clipped at the top and right
    assert (canvas[15:, :] == 0).all()


# ---- preview helpers ---------------------------------------------------------------------------


def test_crop_boxes_on_the_original_match_the_tiles():
    image = torch.from_numpy(gradient(48, 32)).permute(2, 0, 1).float() / 255
    pipeline = Pipeline.of("hflip", "random_resized_crop")
    batch, records = pipeline.preview(image, 8, seed=3)
    boxes, note = crop_boxes(records, (32, 48))
    assert "RandomResizedCrop" in note and len(boxes) == 8
    flipped = records[0]["drawn"]["flipped"].tolist()
    assert any(flipped) and not all(flipped)
    for tile, (top, left, h, w), flip in zip(batch, boxes, flipped):
        # crop the ORIGINAL at the mapped box with torchvision, then flip if the tile was flipped
        expected = TF.resized_crop(image, top, left, h, w, [32, 48], antialias=False)
        expected = expected.flip(-1) if flip else expected
        assert torch.allclose(tile, expected, atol=1e-4)


def test_crop_boxes_when_there_is_nothing_to_draw():
    image = torch.rand(3, 16, 16)
    _, records = Pipeline.of("color_jitter").preview(image, 2, 0)
    assert crop_boxes(records, (16, 16)) == (None, "the pipeline has no crop step")
    _, records = Pipeline.of("rotation", "random_resized_crop").preview(image, 2, 0)
    boxes, note = crop_boxes(records, (16, 16))
    assert boxes is None and "RandomRotation changes the geometry" in note


def test_square_batch_mixes_gray_and_colour():
    batch = square_batch([torch.rand(3, 40, 60), torch.rand(1, 50, 30)], side=24)
    assert batch.shape == (2, 3, 24, 24)
    assert torch.equal(batch[1, 0], batch[1, 2])  # the grayscale picture repeated to three channels
    flat = torch.full((3, 40, 60), 0.25)
    assert torch.allclose(square_batch([flat], 24), torch.full((1, 3, 24, 24), 0.25))


@pytest.mark.parametrize(
    "alpha, exact",
    [(1.0, lambda x: np.ones_like(x)), (2.0, lambda x: 6 * x * (1 - x)), (0.5, lambda x: 1 / (np.pi * np.sqrt(x * (1 - x))))],
)
def test_beta_density_matches_closed_forms(alpha, exact):
    x, density = beta_density(alpha)
    assert np.allclose(density, exact(x), rtol=1e-9)


# ---- samples -----------------------------------------------------------------------------------


def test_every_sample_loads_within_the_preview_size():
    assert samples.SYNTHETIC in samples.SAMPLES and samples.default_sample() in samples.SAMPLES
    for name in samples.SAMPLES:
        loaded = samples.load_sample(name)
        assert max(loaded.tensor.shape[1:]) <= 512 and loaded.tensor.shape[0] in (1, 3), name
        assert loaded.tensor.std() > 0.05, f"{name} should be a real picture, not a flat colour"


def test_skimage_photos_come_from_the_package_without_download():
    folder = samples._skimage_data_dir()
    if folder is None:
        pytest.skip("scikit-image is not installed")
    for name, file in samples.SKIMAGE_FILES.items():
        assert name in samples.SAMPLES, f"{file} missing from {folder}"
        assert samples.sample_bytes(name) == (folder / file).read_bytes()


def test_lab_works_without_scikit_image(monkeypatch):
    monkeypatch.setattr(samples, "_skimage_data_dir", lambda: None)
    assert list(samples._available()) == [samples.SYNTHETIC]


def test_synthetic_scene_is_deterministic():
    samples.synthetic_scene.cache_clear()
    first = samples.synthetic_scene()
    samples.synthetic_scene.cache_clear()
    assert samples.synthetic_scene() == first
    assert ImageOps.exif_transpose(Image.open(io.BytesIO(first))).size == (384, 256)
