"""Pictures in and out: decoding whatever a user uploads, and drawing what the preview shows.

`load_image` is the single way a picture enters the lab. It turns any file PIL can read in one
of the supported formats into a float tensor [C, H, W] in [0, 1], explains in `notes` every
change it made (first frame, downscale, bit depth, transparency), and refuses bad input with
an `ImageError` whose message can be shown to the user as is. The exported "core" code calls
it too, so a grid reproduced from the export starts from exactly the same pixels.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont, ImageOps

from core.augment import get_op
from core.i18n import N_, _, tr

# A 50 MP photo decodes to 150 MB of RGB; larger files are almost always a mistake or an attack.
MAX_PIXELS = 50_000_000
# PIL format name -> what we call it in messages. MPO is what PIL reports for many phone JPEGs.
FORMATS = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "WEBP": "WebP", "BMP": "BMP", "GIF": "GIF", "TIFF": "TIFF"}
# extensions offered by the upload widgets
UPLOAD_TYPES = ("jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff")
SUPPORTED = N_("JPEG, PNG, WebP, BMP, GIF or TIFF")  # shown as tr(SUPPORTED)
# background for transparent pixels: white is what viewers show for most logos and icons
BACKGROUND = (255, 255, 255)
EXIF_ORIENTATION = 0x0112


class ImageError(ValueError):
    """A file that cannot be used as a picture; the message is meant for the user."""


@dataclass(frozen=True)
class LoadedImage:
    tensor: torch.Tensor  # float32 [C, H, W] in [0, 1]; C = 1 for grayscale files, else 3
    original_size: tuple[int, int]  # (width, height) of the upright picture before downscaling
    notes: tuple[str, ...] = ()  # what loading changed, in plain words

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the tensor, the `input_size` the torchvision export wants."""
        return int(self.tensor.shape[1]), int(self.tensor.shape[2])


# ---- decoding ----------------------------------------------------------------------------------


def load_image(source: bytes | str | Path | BinaryIO, max_side: int | None = 512) -> LoadedImage:
    """Decode a picture, upright, 8-bit, flattened, and no longer than `max_side` on its long side."""
    data = _read(source)
    if not data:
        raise ImageError(_("the file is empty"))
    notes: list[str] = []
    im = _open(data)
    width, height = im.size
    if width * height > MAX_PIXELS:
        raise ImageError(_too_big(width, height))

    frames = getattr(im, "n_frames", 1)
    if frames > 1:
        if im.format == "TIFF":
            notes.append(_("multi-page TIFF: using its first page of {frames}").format(frames=frames))
        else:
            notes.append(
                _("animated {format}: using its first frame of {frames}").format(format=FORMATS[im.format], frames=frames)
            )
    orientation = _orientation(im)
    if orientation in (5, 6, 7, 8):  # these orientations turn the picture by 90 degrees
        width, height = height, width
    if max_side and im.format in ("JPEG", "MPO"):
        # let the JPEG decoder skip detail we would throw away (a 2x-8x faster decode); the
        # result stays at least max_side on both sides, so the resize below still does the work
        im.draft(None, (max_side, max_side))

    try:
        im.load()
        im = ImageOps.exif_transpose(im)
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError... for broken data
        raise ImageError(
            _("the {format} file is corrupt or truncated ({error})").format(format=FORMATS[im.format], error=e)
        ) from None
    if orientation != 1:
        notes.append(_("turned upright following its EXIF orientation"))

    im = _to_8bit(im, notes)
    w, h = im.size
    if max_side and max(w, h) > max_side:
        scale = max_side / max(w, h)
        new = (max(1, round(w * scale)), max(1, round(h * scale)))
        # reducing_gap: shrink by whole factors first (fast box filter), then Lanczos for quality
        im = im.resize(new, Image.Resampling.LANCZOS, reducing_gap=3.0)
        notes.append(
            _("downscaled from {width}x{height} to {new_width}x{new_height} for the preview").format(
                width=width, height=height, new_width=new[0], new_height=new[1]
            )
        )

    array = np.asarray(im)
    tensor = torch.from_numpy(array.copy()).float().div_(255)
    tensor = tensor.unsqueeze(0) if tensor.dim() == 2 else tensor.permute(2, 0, 1).contiguous()
    return LoadedImage(tensor, (width, height), tuple(notes))


def _read(source) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    if isinstance(source, (str, Path)):
        try:
            return Path(source).read_bytes()
        except OSError as e:
            raise ImageError(_("cannot read {source}: {reason}").format(source=source, reason=e.strerror or e)) from None
    return source.read()


def _open(data: bytes) -> Image.Image:
    """Read the header only: format, mode and size, without decoding a pixel."""
    try:
        im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        # PIL refuses to report sizes past twice its own limit; read the header ourselves
        raise ImageError(_too_big(*_declared_size(data))) from None
    except Exception:
        if data.lstrip()[:5].lower() in (b"<?xml", b"<svg ", b"<svg>"):
            raise ImageError(
                _("SVG drawings are not supported; export it as PNG ({supported})").format(supported=tr(SUPPORTED))
            ) from None
        raise ImageError(
            _("this file is not an image, or not one that can be read ({supported})").format(supported=tr(SUPPORTED))
        ) from None
    if im.format not in FORMATS:
        raise ImageError(
            _("{format} images are not supported; use {supported}").format(format=im.format, supported=tr(SUPPORTED))
        )
    return im


def _orientation(im: Image.Image) -> int:
    try:
        return int(im.getexif().get(EXIF_ORIENTATION, 1))
    except Exception:  # a damaged EXIF block should not cost the user the picture
        return 1


def _declared_size(data: bytes) -> tuple[int, int]:
    """Width and height from the header, by the plugin that claims the file (no pixel is decoded)."""
    for name in FORMATS:
        factory, accept = Image.OPEN.get(name, (None, None))
        if factory is None or (accept is not None and accept(data[:16]) is not True):
            continue
        try:
            return factory(io.BytesIO(data)).size
        except Exception:
            continue
    return (0, 0)


def _too_big(width: int, height: int) -> str:
    if not width:
        return _("the image is too large to open safely; the limit is {limit:.3g} MP").format(limit=MAX_PIXELS / 1e6)
    return _("image is {width}x{height} = {megapixels:.3g} MP; the limit is {limit:.3g} MP").format(
        width=width, height=height, megapixels=width * height / 1e6, limit=MAX_PIXELS / 1e6
    )


def _to_8bit(im: Image.Image, notes: list[str]) -> Image.Image:
    """Any PIL mode -> "L" (grayscale files) or "RGB" (everything else)."""
    mode = im.mode
    if mode in ("L", "RGB"):
        return im
    if mode == "1":
        return im.convert("L")
    if mode.startswith("I;16") or mode in ("I", "F"):
        return _rescale_deep(im, notes)
    if mode == "CMYK":
        notes.append(_("CMYK converted to RGB"))
        return im.convert("RGB")
    transparent_palette = mode == "P" and "transparency" in im.info
    if mode in ("LA", "La", "PA", "RGBA", "RGBa") or transparent_palette:
        gray = mode in ("LA", "La")
        rgba = im.convert("LA" if gray else "RGBA")
        alpha = rgba.getchannel("A")
        flat = rgba.convert("L" if gray else "RGB")
        if alpha.getextrema()[0] < 255:
            background = Image.new(flat.mode, flat.size, BACKGROUND[0] if gray else BACKGROUND)
            background.paste(flat, mask=alpha)
            flat = background
            notes.append(_("transparency flattened onto white"))
        return flat
    return im.convert("RGB")  # palette without transparency, YCbCr, LAB, HSV


def _rescale_deep(im: Image.Image, notes: list[str]) -> Image.Image:
    """16-bit, 32-bit integer and float grayscale -> 8-bit, keeping the file's intended range."""
    values = np.asarray(im).astype(np.float64)
    if im.mode.startswith("I;16"):
        scaled = values / 65535
        notes.append(_("16-bit image converted to 8-bit"))
    elif im.mode == "F" and values.size and 0 <= values.min() and values.max() <= 1:
        scaled = values
        notes.append(_("floating-point image converted to 8-bit"))
    elif im.mode == "I" and values.size and 0 <= values.min() and values.max() <= 65535:
        # PIL opens some 16-bit files (older TIFF/PNG writers) as 32-bit "I"
        scaled = values / 65535
        notes.append(_("16-bit image converted to 8-bit"))
    else:
        lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        scaled = (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)
        message = (
            _("floating-point image stretched from its range [{lo:g}, {hi:g}] to 8-bit")
            if im.mode == "F"
            else _("32-bit image stretched from its range [{lo:g}, {hi:g}] to 8-bit")
        )
        notes.append(message.format(lo=lo, hi=hi))
    return Image.fromarray(np.round(np.nan_to_num(scaled) * 255).clip(0, 255).astype(np.uint8), "L")


# ---- pictures out ------------------------------------------------------------------------------


def to_uint8(tensor: torch.Tensor) -> np.ndarray:
    """float [C, H, W] in [0, 1] -> uint8 [H, W, C] (or [H, W] for one channel)."""
    if tensor.dim() != 3 or tensor.shape[0] not in (1, 3):
        raise ValueError(
            _("expected an image [C, H, W] with 1 or 3 channels, got {shape}").format(shape=tuple(tensor.shape))
        )
    array = tensor.detach().cpu().float().clamp(0, 1).mul(255).round().to(torch.uint8)
    return array[0].numpy() if array.shape[0] == 1 else array.permute(1, 2, 0).numpy()


def to_pil(tensor: torch.Tensor) -> Image.Image:
    array = to_uint8(tensor)
    return Image.fromarray(array, "L" if array.ndim == 2 else "RGB")


def to_png_bytes(image: torch.Tensor | Image.Image, nrow: int = 4) -> bytes:
    """PNG of one image [C, H, W], a batch [N, C, H, W] (laid out as a grid), or a PIL image.

    Since `load_image` yields multiples of 1/255, the PNG of a loaded image loads back to the
    same tensor: the page's "working image" download reproduces its grid exactly.
    """
    if isinstance(image, torch.Tensor):
        image = make_grid_image(image, nrow) if image.dim() == 4 else to_pil(image)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def make_grid_image(
    batch: torch.Tensor, nrow: int, captions: Sequence[Sequence[str]] | None = None, padding: int = 4
) -> Image.Image:
    """Tiles of a batch [N, C, H, W] in rows of `nrow`, each with its caption lines underneath."""
    n, unused, h, w = batch.shape
    font = _font(12)
    line_height = 15
    lines = max((len(c) for c in captions), default=0) if captions else 0
    cell_h = h + lines * line_height + (padding if lines else 0)
    rows = math.ceil(n / nrow)
    sheet = Image.new("RGB", (padding + nrow * (w + padding), padding + rows * (cell_h + padding)), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for i in range(n):
        x = padding + (i % nrow) * (w + padding)
        y = padding + (i // nrow) * (cell_h + padding)
        sheet.paste(to_pil(batch[i]).convert("RGB"), (x, y))
        for k, text in enumerate(captions[i] if captions else ()):
            line = _fit(draw, text, font, w)
            draw.text((x, y + h + padding // 2 + k * line_height), line, fill=(40, 40, 40), font=font)
    return sheet


def _fit(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    """Cut a caption line to the tile's width, marking the cut with an ellipsis."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # PIL without FreeType: a fixed bitmap font
        return ImageFont.load_default()


# one colour per tile, repeating; chosen to stay visible on photos
BOX_COLOURS = ("#ff1744", "#00e5ff", "#ffea00", "#76ff03", "#ff9100", "#d500f9", "#2979ff", "#ffffff")


def draw_boxes(
    image: torch.Tensor, boxes: Sequence[Sequence[int]], labels: Sequence[str] | None = None, width: int = 2
) -> Image.Image:
    """The image with each (top, left, height, width) box outlined, clipped to the image and labelled."""
    canvas = to_pil(image).convert("RGB")
    draw = ImageDraw.Draw(canvas)
    font = _font(max(10, min(canvas.size) // 14))
    img_w, img_h = canvas.size
    for k, (top, left, h, w) in enumerate(boxes):
        colour = BOX_COLOURS[k % len(BOX_COLOURS)]
        x0, y0 = max(0, int(left)), max(0, int(top))
        x1, y1 = min(img_w, int(left + w)) - 1, min(img_h, int(top + h)) - 1
        if x1 < x0 or y1 < y0:
            continue  # entirely outside the picture (a crop window over padding only)
        draw.rectangle((x0, y0, x1, y1), outline=colour, width=width)
        if labels:
            position = (x0 + width + 1, y0 + width)
            draw.text(position, labels[k], fill=colour, font=font, stroke_width=1, stroke_fill="black")
    return canvas


# ---- preview helpers ---------------------------------------------------------------------------
# Small geometry and plotting helpers the lab page needs around the pipeline; they live here so
# that pages hold no tensor logic.

# ops that move pixels in a way a box on the original cannot describe
_FLIP_AXES = {"hflip": "left", "vflip": "top"}


def crop_boxes(records: list[dict], size: tuple[int, int]) -> tuple[list[tuple[int, int, int, int]] | None, str]:
    """Where each tile's first crop lies on the original image [H, W], and a sentence saying so.

    A crop box is drawn in the coordinates of the image the crop step receives. Flips before it
    only mirror the box, so it is mapped back; any other geometric step (rotation, affine,
    a policy, a resize) before it means there is no box on the original to show.
    """
    height, width = size
    flips: dict[str, torch.Tensor] = {}
    for record in records:
        op = get_op(record["op"])
        drawn = record["drawn"]
        if record["op"] in _FLIP_AXES:
            axis = _FLIP_AXES[record["op"]]
            flips[axis] = flips.get(axis, torch.zeros_like(drawn["flipped"])) ^ drawn["flipped"]
        elif op.group == "geometry" and "box" in drawn:
            box = drawn["box"].clone()
            if "left" in flips:
                box[:, 1] = torch.where(flips["left"], width - box[:, 1] - box[:, 3], box[:, 1])
            if "top" in flips:
                box[:, 0] = torch.where(flips["top"], height - box[:, 0] - box[:, 2], box[:, 0])
            boxes = [tuple(int(v) for v in b) for b in box.tolist()]
            return boxes, _("{op} box of each tile, numbered as the tiles").format(op=tr(op.label))
        elif op.group in ("geometry", "policy"):
            return None, _("no crop box to show: {op} changes the geometry before any crop").format(op=tr(op.label))
    return None, _("the pipeline has no crop step")


def square_batch(images: Sequence[torch.Tensor], side: int = 224) -> torch.Tensor:
    """Centre-crop each image [C, H, W] to a square and resize it to `side`: a batch for mixing.

    Grayscale images are repeated to three channels when the batch also holds colour ones.
    """
    channels = max(img.shape[0] for img in images)
    out = []
    for img in images:
        unused, h, w = img.shape
        s = min(h, w)
        top, left = (h - s) // 2, (w - s) // 2
        crop = img[:, top:top + s, left:left + s].unsqueeze(0)
        resized = torch.nn.functional.interpolate(crop, (side, side), mode="bilinear", antialias=True, align_corners=False)
        out.append(resized.clamp(0, 1).expand(-1, channels, -1, -1))
    return torch.cat(out)


def beta_density(alpha: float, points: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """x and the Beta(alpha, alpha) density on (0, 1), for plotting where lambda is drawn from."""
    x = np.linspace(0, 1, points + 2)[1:-1]  # the density is infinite at 0 and 1 for alpha < 1
    log_norm = 2 * math.lgamma(alpha) - math.lgamma(2 * alpha)
    return x, np.exp((alpha - 1) * (np.log(x) + np.log1p(-x)) - log_norm)
