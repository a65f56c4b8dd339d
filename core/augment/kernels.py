"""Batched kernels: one call transforms a whole batch, each image with its own parameters.

torchvision's functional kernels take one set of parameters per call, so applying them to a
batch means a Python loop per image, which is far too slow for training on 32x32 batches.
These kernels do the same arithmetic for N parameter sets at once; tests/test_kernels.py
checks each of them against the torchvision kernel it replaces, image by image.
Images are float tensors [N, C, H, W] with values in [0, 1].
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # ITU-R 601-2 luma, the weights torchvision uses


def where_images(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image select: a[i] where mask[i] else b[i]."""
    return torch.where(mask.view(-1, 1, 1, 1).to(a.device), a, b)


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """Luma as [N, 1, H, W]."""
    if x.shape[1] == 1:
        return x
    r, g, b = x.unbind(1)
    return (GRAY_WEIGHTS[0] * r + GRAY_WEIGHTS[1] * g + GRAY_WEIGHTS[2] * b).unsqueeze(1)


def _blend(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    f = factor.to(x).view(-1, 1, 1, 1)
    return (f * x + (1 - f) * other).clamp_(0, 1)


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return _blend(x, torch.zeros_like(x), factor)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    mean = grayscale(x).mean(dim=(1, 2, 3), keepdim=True)
    return _blend(x, mean, factor)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 1:  # a grayscale image has no saturation to change
        return x
    return _blend(x, grayscale(x), factor)


def _rgb_to_hsv(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r, g, b = x.unbind(1)
    maxc, _ = x.max(dim=1)
    minc, _ = x.min(dim=1)
    delta = maxc - minc
    gray = delta == 0
    s = delta / torch.where(maxc == 0, torch.ones_like(maxc), maxc)
    d = torch.where(gray, torch.ones_like(delta), delta)
    rc, gc, bc = (maxc - r) / d, (maxc - g) / d, (maxc - b) / d
    h = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.where(gray, torch.zeros_like(h), h)
    return torch.remainder(h / 6.0, 1.0), s, maxc


def _hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    # The closed form f(n) = v - v*s*max(0, min(k, 4-k, 1)) with k = (n + 6h) mod 6.
    out = []
    for n in (5.0, 3.0, 1.0):
        k = torch.remainder(n + h * 6.0, 6.0)
        out.append(v - v * s * torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0))
    return torch.stack(out, dim=1)


def adjust_hue(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Rotate hue by factor[i] (a fraction of the colour wheel, in [-0.5, 0.5])."""
    if x.shape[1] == 1:
        return x
    h, s, v = _rgb_to_hsv(x)
    h = torch.remainder(h + factor.to(x).view(-1, 1, 1), 1.0)
    return _hsv_to_rgb(h, s, v).clamp_(0, 1)


def _source_coords(start: torch.Tensor, length: torch.Tensor, out: int) -> torch.Tensor:
    """Sample positions, in input pixels, of bilinear resizing `length` pixels to `out`.

    The half-pixel convention of F.interpolate(align_corners=False), clamped to the crop, so
    the result equals cropping first and resizing after (what torchvision does).
    """
    length = length.to(torch.float64).view(-1, 1)
    centres = (torch.arange(out, dtype=torch.float64) + 0.5).view(1, -1)
    src = (centres * length / out - 0.5).clamp(min=0)
    src = torch.minimum(src, length - 1)
    return start.to(torch.float64).view(-1, 1) + src


def resized_crop(x: torch.Tensor, box: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Crop box[i] = (top, left, height, width) of image i and resize it to `size`, bilinear.

    Equals torchvision's resized_crop with antialias=False image by image; one grid_sample
    call does the whole batch.
    """
    n, _, h, w = x.shape
    top, left, bh, bw = box.unbind(1)
    ys = _source_coords(top, bh, size[0])  # [N, H']
    xs = _source_coords(left, bw, size[1])  # [N, W']
    # pixel index -> grid_sample's normalised coordinate (align_corners=False)
    gy = (2 * ys + 1) / h - 1
    gx = (2 * xs + 1) / w - 1
    grid = torch.stack(
        (gx.view(n, 1, -1).expand(n, size[0], size[1]), gy.view(n, -1, 1).expand(n, size[0], size[1])), dim=-1
    )
    return F.grid_sample(x, grid.to(x), mode="bilinear", padding_mode="border", align_corners=False)


def crop(x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Per-image crops of one size, by gathering: no interpolation, exact pixels."""
    n, c, _, _ = x.shape
    rows = (top.view(-1, 1) + torch.arange(size[0])).to(x.device)  # [N, h]
    cols = (left.view(-1, 1) + torch.arange(size[1])).to(x.device)  # [N, w]
    idx = torch.arange(n, device=x.device).view(-1, 1, 1)
    out = x.permute(0, 2, 3, 1)[idx, rows.view(n, -1, 1), cols.view(n, 1, -1)]  # [N, h, w, C]
    return out.permute(0, 3, 1, 2).contiguous()


def inverse_affine(angle, translate_x, translate_y, scale, shear_x, shear_y) -> torch.Tensor:
    """[N, 2, 3] inverse matrices, output pixel -> input pixel, in coordinates centred on the image.

    The forward map is T * RSS (rotation by `angle` degrees clockwise on screen, scale, shear in
    degrees), the convention of torchvision's affine. Inverting in closed form keeps it exact.
    """
    rot = torch.deg2rad(angle.to(torch.float64))
    sx = torch.deg2rad(shear_x.to(torch.float64))
    sy = torch.deg2rad(shear_y.to(torch.float64))
    a = torch.cos(rot - sy) / torch.cos(sy)
    b = -torch.cos(rot - sy) * torch.tan(sx) / torch.cos(sy) - torch.sin(rot)
    c = torch.sin(rot - sy) / torch.cos(sy)
    d = -torch.sin(rot - sy) * torch.tan(sx) / torch.cos(sy) + torch.cos(rot)
    s = scale.to(torch.float64)
    # det([[a, b], [c, d]]) == 1, so the inverse of the 2x2 part is [[d, -b], [-c, a]]
    m00, m01, m10, m11 = d / s, -b / s, -c / s, a / s
    tx, ty = translate_x.to(torch.float64), translate_y.to(torch.float64)
    m02 = -(m00 * tx + m01 * ty)
    m12 = -(m10 * tx + m11 * ty)
    return torch.stack((torch.stack((m00, m01, m02), 1), torch.stack((m10, m11, m12), 1)), 1)


def _grid_transform(x: torch.Tensor, grid: torch.Tensor, mode: str, fill: float) -> torch.Tensor:
    out = F.grid_sample(x, grid.to(x), mode=mode, padding_mode="zeros", align_corners=False)
    if fill != 0:
        # Where the grid leaves the image, blend towards `fill` by the share of the sample
        # that fell outside, as torchvision does.
        ones = torch.ones_like(x[:, :1])
        inside = F.grid_sample(ones, grid.to(x), mode=mode, padding_mode="zeros", align_corners=False)
        if mode == "nearest":
            inside = (inside > 0.5).to(x)
        out = out * inside + (1 - inside) * fill
    return out


def affine(x: torch.Tensor, matrix: torch.Tensor, mode: str = "bilinear", fill: float = 0.0) -> torch.Tensor:
    """Warp image i by inverse matrix[i] ([N, 2, 3], centred pixel coordinates)."""
    n, _, h, w = x.shape
    xs = torch.arange(w, dtype=torch.float64) - w * 0.5 + 0.5
    ys = torch.arange(h, dtype=torch.float64) - h * 0.5 + 0.5
    base = torch.stack(
        (xs.view(1, -1).expand(h, w), ys.view(-1, 1).expand(h, w), torch.ones(h, w, dtype=torch.float64)), -1
    )  # [H, W, 3]
    src = torch.einsum("hwk,njk->nhwj", base, matrix)  # [N, H, W, 2], centred input pixels
    grid = src / torch.tensor([w * 0.5, h * 0.5], dtype=torch.float64)
    return _grid_transform(x, grid, mode, fill)


def perspective_coeffs(start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """Coefficients [N, 8] of the homography mapping end points to start points ([N, 4, 2] each)."""
    n = start.shape[0]
    a = torch.zeros(n, 8, 8, dtype=torch.float64)
    ex, ey = end[..., 0].double(), end[..., 1].double()
    sx, sy = start[..., 0].double(), start[..., 1].double()
    a[:, 0::2, 0], a[:, 0::2, 1], a[:, 0::2, 2] = ex, ey, 1
    a[:, 1::2, 3], a[:, 1::2, 4], a[:, 1::2, 5] = ex, ey, 1
    a[:, 0::2, 6], a[:, 0::2, 7] = -sx * ex, -sx * ey
    a[:, 1::2, 6], a[:, 1::2, 7] = -sy * ex, -sy * ey
    b = torch.stack((sx, sy), -1).reshape(n, 8)
    return torch.linalg.solve(a, b)


def perspective(x: torch.Tensor, coeffs: torch.Tensor, mode: str = "bilinear", fill: float = 0.0) -> torch.Tensor:
    """Warp image i by the homography coeffs[i] (output pixel -> input pixel, pixel-edge origin)."""
    n, _, h, w = x.shape
    xs = (torch.arange(w, dtype=torch.float64) + 0.5).view(1, 1, -1)
    ys = (torch.arange(h, dtype=torch.float64) + 0.5).view(1, -1, 1)
    c = [coeffs[:, k].view(-1, 1, 1) for k in range(8)]
    den = c[6] * xs + c[7] * ys + 1
    src_x = (c[0] * xs + c[1] * ys + c[2]) / den
    src_y = (c[3] * xs + c[4] * ys + c[5]) / den
    grid = torch.stack((src_x / (w * 0.5) - 1, src_y / (h * 0.5) - 1), -1)
    return _grid_transform(x, grid, mode, fill)


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


def box_mask(shape: tuple[int, int], top, left, height, width, device=None) -> torch.Tensor:
    """Boolean [N, 1, H, W], true inside rectangle i (clipped to the image)."""
    h, w = shape
    rows = torch.arange(h, device=device).view(1, -1, 1)
    cols = torch.arange(w, device=device).view(1, 1, -1)
    t, l_ = top.view(-1, 1, 1).to(device), left.view(-1, 1, 1).to(device)
    inside = (rows >= t) & (rows < t + height.view(-1, 1, 1).to(device))
    inside = inside & (cols >= l_) & (cols < l_ + width.view(-1, 1, 1).to(device))
    return inside.unsqueeze(1)

