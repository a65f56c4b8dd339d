"""Batched kernels: one call transforms a whole batch, each image with its own parameters.

torchvision's functional kernels take one set of parameters per call, so applying them to a
batch means a Python loop per image, which is far too slow for training on 32x32 batches.
These kernels do the same arithmetic for N parameter sets at once; tests/test_kernels.py
checks each of them against the torchvision kernel it replaces, image by image.
Images are float tensors [N, C, H, W] with values in [0, 1].

Speed notes (bench/preview.py, bench/augment_batch.py): on CPU, torch.where, masked_fill and
max/min with indices over a dimension run about ten times slower than plain arithmetic, so
selections below are written as 0/1 arithmetic or torch.lerp (exact at weights 0 and 1), and
per-image choices index the chosen images instead of computing both branches for all. Turning
a boolean mask into floats costs as much as a full pass, so masks that weight pixels are built
as 0/1 floats from the start (box_mask), and 0/1 weights for per-pixel choices come
from sign() of a difference. A crop of a padded batch is one strided gather (padded_crop).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # ITU-R 601-2 luma, the weights torchvision uses
_GRAY_WEIGHTS = torch.tensor(GRAY_WEIGHTS)


def as_unit_float(x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """uint8 pixels as float in [0, 1], the one conversion the pipeline, ColorJitter, the
    trainer, its evaluation and prediction share (bit for bit the same everywhere), written
    into `out` (float, x's shape) when given; float images unchanged."""
    if x.dtype != torch.uint8:
        return x
    return (x.float() if out is None else out.copy_(x)).div_(255)


def apply_to(mask: torch.Tensor, x: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """x with fn applied to the images where mask[i] is true; fn sees only those images."""
    idx = torch.nonzero(mask).flatten()
    if len(idx) == 0:
        return x
    if len(idx) == len(mask):
        return fn(x)
    idx = idx.to(x.device)
    return index_copy(x, idx, fn(x.index_select(0, idx)))


def index_copy(x: torch.Tensor, idx: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """x.index_copy(0, idx, rows), with every image's bytes seen as 8- or 4-byte words where
    they divide evenly: CPU index_copy on uint8 is about three times slower than on words
    (bench/augment_batch.py's flips run on bytes). A copy, so exact for any dtype."""
    x, rows = x.contiguous(), rows.contiguous()
    row_bytes = x[0].numel() * x.element_size() if len(x) else 0
    size = next((s for s in (8, 4) if row_bytes and row_bytes % s == 0), 0)
    if size <= x.element_size() or not len(rows):
        return x.index_copy(0, idx, rows)
    word = torch.int64 if size == 8 else torch.int32
    out = x.view(len(x), -1).view(word).index_copy(0, idx, rows.view(len(rows), -1).view(word))
    return out.view(x.dtype).view(x.shape)


def paste(x: torch.Tensor, mask: torch.Tensor, fill: float | torch.Tensor) -> torch.Tensor:
    """x with `fill` (a number, or a tensor broadcastable to x) where the mask is true (a
    boolean mask, or 0/1 weights of x's dtype).

    lerp with weights 0 and 1 returns its end points exactly (ATen evaluates it from the nearer
    end), so this is an exact select.
    """
    fill = torch.as_tensor(fill, dtype=x.dtype, device=x.device)
    return torch.lerp(x, fill, mask.to(x.dtype))  # no copy for weights already of x's dtype


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """Luma as [N, 1, H, W], with torchvision's weights and order of operations."""
    if x.shape[1] == 1:
        return x
    r, g, b = x.unbind(1)
    return r.mul(GRAY_WEIGHTS[0]).add_(g, alpha=GRAY_WEIGHTS[1]).add_(b, alpha=GRAY_WEIGHTS[2]).unsqueeze(1)


def _factors(factor: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return factor.to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)


# The colour adjustments take an optional `out` (a tensor shaped like x, possibly a slice of a
# bigger batch) to write into: ColorJitter then assembles its batch without an extra copy.


def _blend(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor, out: torch.Tensor | None) -> torch.Tensor:
    """factor * x + (1 - factor) * other, clamped: torchvision's _blend, one factor per image.

    `other` is a per-image constant or a one-channel image, so its term is computed at that
    size and broadcast: one full-size multiply and one add. out may be x itself (in place).
    """
    f = _factors(factor, x)
    return torch.mul(x, f, out=out).add_(other * (1 - f)).clamp_(0, 1)


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    return torch.mul(x, _factors(factor, x), out=out).clamp_(0, 1)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    # the mean of the luma is the luma of the channel means: one reduction, no luma image
    means = x.mean(dim=(2, 3))
    if x.shape[1] == 3:
        means = (means * _GRAY_WEIGHTS.to(device=x.device, dtype=x.dtype)).sum(1, keepdim=True)
    return _blend(x, means.view(-1, 1, 1, 1), factor, out)


def _unchanged(x: torch.Tensor, out: torch.Tensor | None) -> torch.Tensor:
    return x if out is None else out.copy_(x)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    if x.shape[1] == 1:  # a grayscale image has no saturation to change
        return _unchanged(x, out)
    return _blend(x, grayscale(x), factor, out)


_LOWEST_AT = torch.tensor((3.0, 5.0, 1.0)).view(1, 3, 1, 1)  # the hue at which R, G, B is smallest


def adjust_hue(x: torch.Tensor, factor: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """Rotate hue by factor[i] (a fraction of the colour wheel, in [-0.5, 0.5]).

    The HSV round trip of torchvision's adjust_hue without building the S and V planes: the
    channel maximum and minimum stay, hue h is counted in sixths of the wheel (0 red, 2 green,
    4 blue), and each output channel is min + chroma * clamp(d - 1, 0, 1), where d is the
    distance round the wheel from the shifted h to the hue at which that channel is smallest
    (cyan 3 for red, magenta 5 for green, yellow 1 for blue): the closed form of HSV to RGB.
    Requires |factor| <= 0.5, as torchvision does.

    Written for speed on CPU (bench/augment_batch.py): every full-size step works in place in
    the output, and the per-pixel choices are 0/1 weights from sign() rather than comparisons
    turned into floats. (Running it block by block, to stay in L2, made it faster alone on a
    whole batch but slower inside ColorJitter, whose slices are a quarter of a batch.)
    """
    if x.shape[1] == 1:
        return _unchanged(x, out)
    r, g, b = x.unbind(1)
    # two elementwise maxima (minima) are faster on CPU than a reduction over the channels
    maxc = torch.maximum(r, g)
    maxc = torch.maximum(maxc, b, out=maxc)
    minc = torch.minimum(r, g)
    minc = torch.minimum(minc, b, out=minc)
    chroma = maxc - minc
    # Which channel is largest picks the sector (ties go to red, then green, as in
    # torchvision): sign(max - channel) is 0 where that channel is the largest, 1 elsewhere,
    # and lerp with 0/1 weights selects exactly.
    not_green = torch.sub(maxc, g).sign_()
    not_red = torch.sub(maxc, r).sign_()
    green_or_blue = torch.lerp((b - r).add_(chroma, alpha=2), (r - g).add_(chroma, alpha=4), not_green)
    hue = torch.lerp(g - b, green_or_blue, not_red)
    # grey pixels (chroma 0) have hue 0/tiny = 0; any hue would do, chroma multiplies it below
    hue.div_(chroma.clamp(min=torch.finfo(x.dtype).tiny))
    # The gap from each channel's lowest point to the shifted hue, u = h + 6 * factor - lowest,
    # matters only modulo the wheel's 6, so the per-image, per-channel offset (an [N, 3] tensor)
    # is wrapped into [-5, 1): with h in [-1, 5], u is then in [-6, 6), and its distance round
    # the wheel is 3 - ||u| - 3|, with no remainder (a slow op on CPU) on the full-size planes.
    offset = factor.to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1) * 6.0 - _LOWEST_AT.to(device=x.device, dtype=x.dtype)
    offset = offset - 6.0 * torch.floor((offset + 5.0) / 6.0)
    # [N, 3, H, W], the three channels at once, in place in the output: e = ||u| - 3|, so
    # d = 3 - e and min + chroma * clamp(d - 1, 0, 1) = (min + 2 * chroma) - chroma * clamp(e, 1, 2)
    e = torch.add(hue.unsqueeze(1), offset, out=out).abs_().sub_(3.0).abs_().clamp_(1.0, 2.0)
    top = minc.add_(chroma, alpha=2).unsqueeze(1)
    return torch.addcmul(top, e, chroma.unsqueeze(1), value=-1, out=e).clamp_(0, 1)


def _bilinear_taps(start: torch.Tensor, length: torch.Tensor, out: int, device) -> tuple:
    """For resizing `length` pixels from `start` to `out` pixels, bilinear, per image [N]:
    the two source indices and the weight of the second, each [N, out].

    The half-pixel rule of F.interpolate(align_corners=False) in float32 like its CPU kernel:
    src = (i + 0.5) * length / out - 0.5, clamped at 0; the second tap is clamped to the crop's
    last pixel, which is what cropping before resizing (torchvision's order) amounts to.
    """
    length = length.to(device).view(-1, 1)
    scale = length.to(torch.float32) / out
    src = ((torch.arange(out, device=device, dtype=torch.float32) + 0.5) * scale - 0.5).clamp_(min=0)
    first = src.long()  # floor, since src >= 0; src < length - 0.5, so first is inside the crop
    second = torch.minimum(first + 1, length - 1)  # at the last pixel both taps coincide
    weight = src - first
    offset = start.to(device).view(-1, 1)
    return first + offset, second + offset, weight


def _take_rows(x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """[N, C, k, W]: rows[i] (k row indices) of image i, copied whole from the [N*C*H, W] view."""
    n, c, h, w = x.shape
    base = (torch.arange(n * c, device=x.device) * h).view(n, c, 1)
    flat = (base + rows.to(x.device).view(n, 1, -1)).flatten()
    return x.reshape(n * c * h, w).index_select(0, flat).view(n, c, rows.shape[1], w)


def _take_columns(x: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """[N, C, H, k]: columns cols[i] (k column indices) of image i."""
    n, c, h, _ = x.shape
    return x.gather(3, cols.to(x.device).view(n, 1, 1, -1).expand(n, c, h, cols.shape[1]))


def resized_crop(x: torch.Tensor, box: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Crop box[i] = (top, left, height, width) of image i and resize it to `size`, bilinear.

    Equals torchvision's resized_crop with antialias=False image by image. Bilinear resizing is
    separable, so it runs as two gathers (whole rows, then columns) and two lerps: several
    times faster than grid_sample on large images.
    """
    n = x.shape[0]
    top, left, box_h, box_w = box.unbind(1)
    y0, y1, wy = _bilinear_taps(top, box_h, size[0], x.device)
    x0, x1, wx = _bilinear_taps(left, box_w, size[1], x.device)
    rows = _take_rows(x, y0).lerp_(_take_rows(x, y1), wy.to(x.dtype).view(n, 1, -1, 1))
    return _take_columns(rows, x0).lerp_(_take_columns(rows, x1), wx.to(x.dtype).view(n, 1, 1, -1))


_PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "replicate"}  # ours -> F.pad's


def padded_crop(x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """Windows of one size at (top[i], left[i]) of image i padded on every side, exact pixels
    ("constant" pads with 0, "edge" repeats the border, "reflect" mirrors it without repeating
    the edge pixel, as torchvision and numpy do). Works on any dtype, uint8 included.

    top/left are in the unpadded image's coordinates (negative on the padding). The batch is
    padded once, as little as the windows need; every window of every channel plane is then a
    strided view of that one buffer (rows of the padded width apart), so a single index_select
    copies them all: about twice as fast on CPU as gathering rows and then columns.
    """
    n, c, h, w = x.shape
    oh, ow = size
    pads = (max(0, -int(left.min())), max(0, int(left.max()) + ow - w),  # left, right, top, bottom
            max(0, -int(top.min())), max(0, int(top.max()) + oh - h))
    padded = (F.pad(x, pads, mode=_PAD_MODES[mode]) if any(pads) else x).contiguous()
    ph, pw = padded.shape[2:]
    flat = padded.view(-1)
    windows = flat.as_strided((flat.numel() - (oh - 1) * pw - (ow - 1), oh, ow), (1, pw, 1))
    corner = (top.to(torch.long) + pads[2]) * pw + (left.to(torch.long) + pads[0])  # [N]
    planes = torch.arange(n * c).view(n, c) * (ph * pw)
    starts = (planes + corner.view(n, 1)).flatten().to(x.device)
    return windows.index_select(0, starts).view(n, c, oh, ow)


def inverse_affine(angle, translate_x, translate_y, scale, shear_x, shear_y) -> torch.Tensor:
    """[N, 2, 3] inverse matrices, output pixel -> input pixel, in coordinates centred on the image.

    The forward map is T * RSS (rotation by `angle` degrees clockwise on screen, scale, shear in
    degrees), the convention of torchvision's affine; the closed form below is the one of
    torchvision's _get_inverse_affine_matrix, in float64 like its Python floats.
    """
    rot = torch.deg2rad(angle.to(torch.float64))
    sx = torch.deg2rad(shear_x.to(torch.float64))
    sy = torch.deg2rad(shear_y.to(torch.float64))
    a = torch.cos(rot - sy) / torch.cos(sy)
    b = -(a * torch.tan(sx) + torch.sin(rot))
    c = torch.sin(rot - sy) / torch.cos(sy)
    d = torch.cos(rot) - c * torch.tan(sx)
    s = scale.to(torch.float64)
    # det([[a, b], [c, d]]) == 1, so the inverse of the 2x2 part is [[d, -b], [-c, a]]
    m00, m01, m10, m11 = d / s, -b / s, -c / s, a / s
    tx, ty = translate_x.to(torch.float64), translate_y.to(torch.float64)
    m02 = -m00 * tx - m01 * ty
    m12 = -m10 * tx - m11 * ty
    return torch.stack((torch.stack((m00, m01, m02), 1), torch.stack((m10, m11, m12), 1)), 1)


def _grid_transform(x: torch.Tensor, grid: torch.Tensor, mode: str, fill: float) -> torch.Tensor:
    """grid_sample plus torchvision's fill rule, for a batch with one grid per image.

    A channel of ones rides along through the same grid_sample call; where it comes back below
    one, part of the sample fell outside the image and the pixel is blended towards `fill` by
    that share (bilinear) or replaced by it (nearest). torchvision applies this rule for
    fill=0 too (its transforms pass 0, not None), which darkens the border pixels twice; we
    follow it so that exported code and the preview agree.
    """
    n, c, h, w = x.shape
    ones = torch.ones(n, 1, h, w, dtype=x.dtype, device=x.device)
    sampled = F.grid_sample(torch.cat((x, ones), 1), grid, mode=mode, padding_mode="zeros", align_corners=False)
    out, inside = sampled[:, :c], sampled[:, c:]
    if mode == "nearest":
        return paste(out, inside < 0.5, fill)
    return out.sub_(fill).mul_(inside).add_(fill)


def _pixel_centres(length: int, start: float, dtype, device) -> torch.Tensor:
    return torch.linspace(start, start + length - 1.0, steps=length, dtype=dtype, device=device)


def affine(x: torch.Tensor, matrix: torch.Tensor, mode: str = "bilinear", fill: float = 0.0) -> torch.Tensor:
    """Warp image i by inverse matrix[i] ([N, 2, 3], centred pixel coordinates).

    The grid is built like torchvision's _affine_grid, in the image's dtype and with the same
    operations, so nearest-neighbour results match it pixel for pixel.
    """
    n, _, h, w = x.shape
    base = torch.empty(1, h, w, 3, dtype=x.dtype, device=x.device)
    base[..., 0].copy_(_pixel_centres(w, (1.0 - w) * 0.5, x.dtype, x.device))
    base[..., 1].copy_(_pixel_centres(h, (1.0 - h) * 0.5, x.dtype, x.device).unsqueeze_(-1))
    base[..., 2].fill_(1)
    theta = matrix.to(device=x.device, dtype=x.dtype).transpose(1, 2)
    theta = theta / torch.tensor([0.5 * w, 0.5 * h], dtype=x.dtype, device=x.device)
    grid = base.view(1, h * w, 3).expand(n, -1, -1).bmm(theta).view(n, h, w, 2)
    return _grid_transform(x, grid, mode, fill)


def perspective_coeffs(start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """Coefficients [N, 8] of the homography mapping end points to start points ([N, 4, 2] each).

    Solved in float64 and rounded to float32, as torchvision's _get_perspective_coeffs does.
    """
    n = start.shape[0]
    a = torch.zeros(n, 8, 8, dtype=torch.float64)
    ex, ey = end[..., 0].double(), end[..., 1].double()
    sx, sy = start[..., 0].double(), start[..., 1].double()
    a[:, 0::2, 0], a[:, 0::2, 1], a[:, 0::2, 2] = ex, ey, 1
    a[:, 1::2, 3], a[:, 1::2, 4], a[:, 1::2, 5] = ex, ey, 1
    a[:, 0::2, 6], a[:, 0::2, 7] = -sx * ex, -sx * ey
    a[:, 1::2, 6], a[:, 1::2, 7] = -sy * ex, -sy * ey
    b = torch.stack((sx, sy), -1).reshape(n, 8, 1)
    return torch.linalg.lstsq(a, b, driver="gels").solution.squeeze(-1).to(torch.float32)


def perspective(x: torch.Tensor, coeffs: torch.Tensor, mode: str = "bilinear", fill: float = 0.0) -> torch.Tensor:
    """Warp image i by the homography coeffs[i] (output pixel -> input pixel, pixel-edge origin).

    The grid follows torchvision's _perspective_grid operation for operation.
    """
    n, _, h, w = x.shape
    base = torch.empty(1, h, w, 3, dtype=x.dtype, device=x.device)
    base[..., 0].copy_(_pixel_centres(w, 0.5, x.dtype, x.device))
    base[..., 1].copy_(_pixel_centres(h, 0.5, x.dtype, x.device).unsqueeze_(-1))
    base[..., 2].fill_(1)
    base = base.view(1, h * w, 3).expand(n, -1, -1)
    c = coeffs.to(device=x.device, dtype=x.dtype)
    theta1 = c[:, :6].reshape(n, 2, 3).transpose(1, 2) / torch.tensor([0.5 * w, 0.5 * h], dtype=x.dtype, device=x.device)
    denominator = torch.cat((c[:, 6:], torch.ones(n, 1, dtype=x.dtype, device=x.device)), 1)  # [N, 3]
    theta2 = denominator.unsqueeze(2).expand(n, 3, 2).contiguous()  # bmm is very slow on stride-0 operands
    grid = base.bmm(theta1).div_(base.bmm(theta2)).sub_(1.0)
    return _grid_transform(x, grid.view(n, h, w, 2), mode, fill)


def gaussian_blur(x: torch.Tensor, kernel_size: int, sigma: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur with sigma[i] per image, reflect padding (torchvision's kernel)."""
    n, c, h, w = x.shape
    # reflect padding needs pad < side, so a tiny image gets the largest kernel it can take
    k = min(kernel_size, 2 * min(h, w) - 1)
    k -= (k + 1) % 2
    if k < 3:
        return x
    half = (k - 1) * 0.5
    t = torch.linspace(-half, half, k, dtype=torch.float64).view(1, -1)
    kern = torch.exp(-0.5 * (t / sigma.to(torch.float64).view(-1, 1)) ** 2)
    kern = (kern / kern.sum(1, keepdim=True)).to(x)  # [N, k]
    kern = kern.repeat_interleave(c, 0)  # one filter per (image, channel)
    pad = k // 2
    y = F.pad(x.reshape(1, n * c, h, w), (pad, pad, pad, pad), mode="reflect")
    y = F.conv2d(y, kern.view(n * c, 1, 1, k), groups=n * c)
    y = F.conv2d(y, kern.view(n * c, 1, k, 1), groups=n * c)
    return y.view(n, c, h, w)


def box_mask(shape: tuple[int, int], top, left, height, width, device=None, dtype=torch.float32) -> torch.Tensor:
    """[N, 1, H, W] of `dtype`, 1 inside rectangle i and 0 outside, clipped to the image; empty
    where its height or width is 0. 0/1 weights rather than booleans, so that paste uses them
    as they are; the rows and the columns inside are found apart, then one full-size product."""
    h, w = shape
    rows = torch.arange(h, device=device).view(1, -1, 1)
    cols = torch.arange(w, device=device).view(1, 1, -1)
    t, l_ = top.view(-1, 1, 1).to(device), left.view(-1, 1, 1).to(device)
    rows_inside = (rows >= t) & (rows < t + height.view(-1, 1, 1).to(device))  # [N, H, 1]
    cols_inside = (cols >= l_) & (cols < l_ + width.view(-1, 1, 1).to(device))  # [N, 1, W]
    return torch.mul(rows_inside.to(dtype), cols_inside.to(dtype)).unsqueeze(1)

