"""Every augmentation of the lab, each declared once: schema, sampling, application, export.

Sampling follows the torchvision v2 transform of the same name (same distributions, same
retry rules), but draws for a whole batch from an explicit generator so each image gets its
own parameters. Application uses the batched kernels (checked against torchvision's kernels in
the tests) or, for the policies, torchvision's own transforms image by image.
"""
from __future__ import annotations

import math

import torch
from torchvision.transforms import v2

from core.i18n import _

from . import kernels as K
from .schema import Op, Param, bernoulli, fmt, register, uniform

P_HELP = "Probability that an image gets this augmentation."


def _p(default: float = 0.5) -> Param:
    return Param("p", "float", default, 0.0, 1.0, 0.05, help=P_HELP)


def _out_size(size: int, shape: tuple) -> tuple[int, int]:
    return (shape[1], shape[2]) if size == 0 else (size, size)


def _size_code(size: int, input_size: tuple[int, int]) -> str:
    return repr(list(input_size)) if size == 0 else str(size)


# ---- flips -------------------------------------------------------------------------------------


def _flip(name: str, label: str, dim: int, tv_name: str) -> Op:
    return register(
        Op(
            name=name,
            label=label,
            group="flip",
            help=f"Mirror the image {'left-right' if dim == -1 else 'upside down'} with probability p.",
            params=(_p(),),
            sample=lambda n, shape, prm, g, ctx: {"flipped": bernoulli(n, prm["p"], g)},
            apply=lambda x, d, prm, ctx: K.apply_to(d["flipped"], x, lambda s: s.flip(dim)),
            torchvision_code=lambda prm, size: f"v2.{tv_name}(p={prm['p']})",
            describe=lambda d, i: _("flipped") if d["flipped"][i] else _("not flipped"),
            moves_pixels=True,
        )
    )


_flip("hflip", "Horizontal flip", -1, "RandomHorizontalFlip")
_flip("vflip", "Vertical flip", -2, "RandomVerticalFlip")


# ---- geometry ----------------------------------------------------------------------------------


def _sample_boxes(n, height, width, scale, ratio, g, erasing=False, attempts=10):
    """Boxes drawn as RandomResizedCrop (or, with erasing=True, RandomErasing) draws them.

    Each image gets up to `attempts` tries of (area fraction ~ U(scale), log ratio ~ U(log
    ratio)); the first try that fits wins. The two transforms differ in details kept here:
    RandomResizedCrop reads the ratio as width/height and accepts a box as large as the image,
    RandomErasing reads it as height/width and needs the box strictly smaller than the image.
    Returns (top, left, h, w, ok): ok[i] is false where no try fitted.
    """
    area = height * width * uniform(n * attempts, scale[0], scale[1], g).view(n, attempts)
    log_ratio = uniform(n * attempts, math.log(ratio[0]), math.log(ratio[1]), g).view(n, attempts)
    side_times = torch.round(torch.sqrt(area * torch.exp(log_ratio))).long()
    side_over = torch.round(torch.sqrt(area / torch.exp(log_ratio))).long()
    if erasing:
        h, w = side_times, side_over
        fits = (h < height) & (w < width)
    else:
        w, h = side_times, side_over
        fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    ok = fits.any(1)
    first = fits.long().argmax(1).view(-1, 1)  # index of the first fitting try (0 if none)
    h, w = h.gather(1, first).squeeze(1), w.gather(1, first).squeeze(1)
    u = torch.rand(n, 2, generator=g, dtype=torch.float64)
    top = torch.floor(u[:, 0] * (height - h + 1).clamp(min=1)).long()
    left = torch.floor(u[:, 1] * (width - w + 1).clamp(min=1)).long()
    return top, left, h, w, ok


def _rrc_sample(n, shape, prm, g, ctx):
    unused, height, width = shape
    top, left, h, w, ok = _sample_boxes(n, height, width, prm["scale"], prm["ratio"], g)
    # torchvision's fallback: the largest central crop within the allowed ratios
    in_ratio = width / height
    if in_ratio < prm["ratio"][0]:
        fh, fw = int(round(width / prm["ratio"][0])), width
    elif in_ratio > prm["ratio"][1]:
        fh, fw = height, int(round(height * prm["ratio"][1]))
    else:
        fh, fw = height, width
    top = torch.where(ok, top, (height - fh) // 2)
    left = torch.where(ok, left, (width - fw) // 2)
    h, w = torch.where(ok, h, fh), torch.where(ok, w, fw)
    return {"box": torch.stack((top, left, h, w), 1)}


register(
    Op(
        name="random_resized_crop",
        label="RandomResizedCrop",
        group="geometry",
        help="Crop a random part of the image (area fraction `scale`, aspect ratio `ratio`) and "
        "resize it to `size`. The ImageNet standard is scale 0.08-1; the course uses 0.1-1, ratio 0.5-2.",
        params=(
            Param("size", "int", 0, 0, 512, 1, unit="px", help="Output side in pixels; 0 keeps the input size."),
            Param("scale", "float_range", (0.1, 1.0), 0.01, 1.0, 0.01, help="Range of the crop's area, as a fraction of the image."),
            Param("ratio", "float_range", (0.5, 2.0), 0.2, 5.0, 0.05, help="Range of the crop's width/height."),
        ),
        sample=_rrc_sample,
        apply=lambda x, d, prm, ctx: K.resized_crop(x, d["box"], _out_size(prm["size"], x.shape[1:])),
        torchvision_code=lambda prm, size: (
            f"v2.RandomResizedCrop(size={_size_code(prm['size'], size)}, scale={tuple(prm['scale'])}, "
            f"ratio={tuple(prm['ratio'])}, antialias=False)"
        ),
        describe=lambda d, i: _("crop top={top} left={left} h={h} w={w}").format(
            **dict(zip(("top", "left", "h", "w"), d["box"][i].tolist()))
        ),
    )
)


def _pad_crop_sample(n, shape, prm, g, ctx):
    unused, h, w = shape
    oh, ow = _out_size(prm["size"], shape)
    pad = prm["padding"]
    oh, ow = min(oh, h + 2 * pad), min(ow, w + 2 * pad)
    u = torch.rand(n, 2, generator=g, dtype=torch.float64)
    top = torch.floor(u[:, 0] * (h + 2 * pad - oh + 1)).long()
    left = torch.floor(u[:, 1] * (w + 2 * pad - ow + 1)).long()
    # box in the coordinates of the original (unpadded) image, for drawing
    return {"box": torch.stack((top - pad, left - pad, torch.full_like(top, oh), torch.full_like(top, ow)), 1)}


def _pad_crop_apply(x, d, prm, ctx):
    mode = prm["padding_mode"]
    if mode == "reflect" and prm["padding"] >= min(x.shape[-2:]):
        # A mirror cannot be wider than the image (torchvision raises here); on tiny images
        # repeating the edge is the closest thing that still works.
        mode = "edge"
    box = d["box"]
    return K.padded_crop(x, box[:, 0], box[:, 1], (int(box[0, 2]), int(box[0, 3])), mode)


register(
    Op(
        name="pad_crop",
        label="RandomCrop with padding",
        group="geometry",
        help="Pad the image on every side, then cut a random window of the original size: the CIFAR "
        "standard (pad 4, crop 32) shifts each image by up to 4 pixels.",
        params=(
            Param("padding", "int", 4, 0, 64, 1, unit="px", help="Pixels added on each side."),
            Param("padding_mode", "choice", "constant", choices=("constant", "reflect", "edge"), help="How the border is filled: black, mirrored, or the edge pixel repeated."),
            Param("size", "int", 0, 0, 512, 1, unit="px", help="Window side in pixels; 0 keeps the input size."),
        ),
        sample=_pad_crop_sample,
        apply=_pad_crop_apply,
        torchvision_code=lambda prm, size: (
            f"v2.RandomCrop(size={_size_code(prm['size'], size)}, padding={prm['padding']}, "
            f"padding_mode={prm['padding_mode']!r})"
        ),
        describe=lambda d, i: _("window top={top} left={left}").format(
            **dict(zip(("top", "left"), d["box"][i, :2].tolist()))
        ),
        moves_pixels=True,
    )
)

_INTERP = ("bilinear", "nearest")
_TV_INTERP = {"bilinear": "v2.InterpolationMode.BILINEAR", "nearest": "v2.InterpolationMode.NEAREST"}


def _interp_param() -> Param:
    return Param("interpolation", "choice", "bilinear", choices=_INTERP, help="How pixels between grid points are computed.")


def _fill_param() -> Param:
    return Param("fill", "float", 0.0, 0.0, 1.0, 0.05, help="Grey level (0 black, 1 white) for the area uncovered by the warp.")


def _affine_matrix(d: dict) -> torch.Tensor:
    return K.inverse_affine(d["angle"], d["tx"], d["ty"], d["scale"], d["shear_x"], d["shear_y"])


def _zeros(n):
    return torch.zeros(n, dtype=torch.float64)


def _rotation_sample(n, shape, prm, g, ctx):
    # RandomRotation turns counter-clockwise by `angle`: an affine turn of -angle
    angle = uniform(n, *prm["degrees"], g)
    return {"angle": -angle, "tx": _zeros(n), "ty": _zeros(n), "scale": torch.ones(n, dtype=torch.float64),
            "shear_x": _zeros(n), "shear_y": _zeros(n)}


register(
    Op(
        name="rotation",
        label="RandomRotation",
        group="geometry",
        help="Turn the image by a random angle (degrees, counter-clockwise) about its centre.",
        params=(
            Param("degrees", "float_range", (-15.0, 15.0), -180.0, 180.0, 1.0, help="Range of the angle in degrees."),
            _interp_param(),
            _fill_param(),
        ),
        sample=_rotation_sample,
        apply=lambda x, d, prm, ctx: K.affine(x, _affine_matrix(d), prm["interpolation"], prm["fill"]),
        torchvision_code=lambda prm, size: (
            f"v2.RandomRotation(degrees={tuple(prm['degrees'])}, interpolation={_TV_INTERP[prm['interpolation']]}, "
            f"fill={prm['fill']})"
        ),
        describe=lambda d, i: _("angle={angle:.1f}°").format(angle=-d["angle"][i].item()),
    )
)


def _affine_sample(n, shape, prm, g, ctx):
    unused, h, w = shape
    angle = uniform(n, *prm["degrees"], g)
    max_dx, max_dy = prm["translate_x"] * w, prm["translate_y"] * h
    tx = torch.round(uniform(n, -max_dx, max_dx, g))
    ty = torch.round(uniform(n, -max_dy, max_dy, g))
    scale = uniform(n, *prm["scale"], g)
    shear_x = uniform(n, *prm["shear_x"], g)
    shear_y = uniform(n, *prm["shear_y"], g)
    return {"angle": angle, "tx": tx, "ty": ty, "scale": scale, "shear_x": shear_x, "shear_y": shear_y}


register(
    Op(
        name="affine",
        label="RandomAffine",
        group="geometry",
        help="Random rotation (clockwise degrees), translation (fraction of the size), scaling and shear, in one warp.",
        params=(
            Param("degrees", "float_range", (0.0, 0.0), -180.0, 180.0, 1.0, help="Range of the rotation in degrees."),
            # two numbers, not a range: torchvision's translate=(a, b) is the largest shift per axis
            Param("translate_x", "float", 0.1, 0.0, 0.5, 0.01, help="Largest horizontal shift as a fraction of the width."),
            Param("translate_y", "float", 0.1, 0.0, 0.5, 0.01, help="Largest vertical shift as a fraction of the height."),
            Param("scale", "float_range", (0.9, 1.1), 0.1, 3.0, 0.05, help="Range of the zoom factor."),
            Param("shear_x", "float_range", (0.0, 0.0), -45.0, 45.0, 1.0, help="Range of the horizontal shear in degrees."),
            Param("shear_y", "float_range", (0.0, 0.0), -45.0, 45.0, 1.0, help="Range of the vertical shear in degrees."),
            _interp_param(),
            _fill_param(),
        ),
        sample=_affine_sample,
        apply=lambda x, d, prm, ctx: K.affine(x, _affine_matrix(d), prm["interpolation"], prm["fill"]),
        torchvision_code=lambda prm, size: (
            f"v2.RandomAffine(degrees={tuple(prm['degrees'])}, translate={(prm['translate_x'], prm['translate_y'])}, "
            f"scale={tuple(prm['scale'])}, shear={tuple(prm['shear_x']) + tuple(prm['shear_y'])}, "
            f"interpolation={_TV_INTERP[prm['interpolation']]}, fill={prm['fill']})"
        ),
        describe=lambda d, i: (
            _(
                "angle={angle:.1f}°, shift=({tx}, {ty}) px, scale={scale:.2f}, "
                "shear=({shear_x:.1f}°, {shear_y:.1f}°)"
            ).format(
                angle=d["angle"][i].item(), tx=int(d["tx"][i]), ty=int(d["ty"][i]), scale=d["scale"][i].item(),
                shear_x=d["shear_x"][i].item(), shear_y=d["shear_y"][i].item(),
            )
        ),
    )
)


def _perspective_sample(n, shape, prm, g, ctx):
    unused, h, w = shape
    # RandomPerspective's bounds: int(distortion * (side // 2)), so odd sides round down first
    dx, dy = int(prm["distortion"] * (w // 2)), int(prm["distortion"] * (h // 2))
    u = torch.rand(n, 8, generator=g, dtype=torch.float64)
    # each corner moves inwards by a random amount up to (dx, dy), as in RandomPerspective
    rx = torch.floor(u[:, :4] * (dx + 1))
    ry = torch.floor(u[:, 4:] * (dy + 1))
    start = torch.tensor([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], dtype=torch.float64).expand(n, 4, 2)
    end = torch.stack(
        (
            torch.stack((rx[:, 0], w - 1 - rx[:, 1], w - 1 - rx[:, 2], rx[:, 3]), 1),
            torch.stack((ry[:, 0], ry[:, 1], h - 1 - ry[:, 2], h - 1 - ry[:, 3]), 1),
        ),
        -1,
    )
    # On tiny images three corners can land on one line, which leaves no homography (torchvision
    # raises); such an image is left as it is.
    applied = bernoulli(n, prm["p"], g) & ~_degenerate(end)
    return {"applied": applied, "start": start.clone(), "end": end}


def _degenerate(quads: torch.Tensor) -> torch.Tensor:
    """[N, 4, 2] corners -> [N] true where some three corners are collinear (or coincide)."""
    bad = torch.zeros(quads.shape[0], dtype=torch.bool)
    for i, j, k in ((0, 1, 2), (0, 1, 3), (0, 2, 3), (1, 2, 3)):
        u, v = quads[:, j] - quads[:, i], quads[:, k] - quads[:, i]
        bad |= u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0] == 0
    return bad


def _perspective_apply(x, d, prm, ctx):
    idx = torch.nonzero(d["applied"]).flatten()
    if len(idx) == 0:
        return x
    coeffs = K.perspective_coeffs(d["start"][idx], d["end"][idx])
    out = x.clone()
    out[idx.to(x.device)] = K.perspective(x[idx.to(x.device)], coeffs, prm["interpolation"], prm["fill"])
    return out


register(
    Op(
        name="perspective",
        label="RandomPerspective",
        group="geometry",
        help="Move each corner inwards by a random amount (up to `distortion` × half the side), as if seen from another angle.",
        params=(_p(0.5), Param("distortion", "float", 0.5, 0.0, 1.0, 0.05, help="How far corners may move (0 none, 1 up to half the side)."), _interp_param(), _fill_param()),
        sample=_perspective_sample,
        apply=_perspective_apply,
        torchvision_code=lambda prm, size: (
            f"v2.RandomPerspective(distortion_scale={prm['distortion']}, p={prm['p']}, "
            f"interpolation={_TV_INTERP[prm['interpolation']]}, fill={prm['fill']})"
        ),
        describe=lambda d, i: _("corners {corners}").format(
            corners=" ".join(f"({int(a)},{int(b)})" for a, b in d["end"][i].tolist())
        )
        if d["applied"][i] else _("not applied"),
    )
)


# ---- colour ------------------------------------------------------------------------------------

_JITTER_OPS = ("brightness", "contrast", "saturation", "hue")
_JITTER_KERNELS = (K.adjust_brightness, K.adjust_contrast, K.adjust_saturation, K.adjust_hue)


def _jitter_sample(n, shape, prm, g, ctx):
    out = {}
    for name in _JITTER_OPS[:3]:
        s = prm[name]
        out[name] = uniform(n, max(0.0, 1 - s), 1 + s, g)
    out["hue"] = uniform(n, -prm["hue"], prm["hue"], g)
    # ColorJitter applies its four adjustments in a random order per image
    out["order"] = torch.argsort(torch.rand(n, 4, generator=g), dim=1)
    return out


def _jitter_apply(x, d, prm, ctx):
    # Each image meets the four adjustments in its own order. At each position the batch is
    # laid out (one gather) so that the images due for the same adjustment form one slice, and
    # each adjustment runs once, in place on its slice; a last gather restores the batch order.
    # The layouts are worked out up front on the small tensors (which image each row holds at
    # each position, and the factors in that order), so the loop below issues few small ops.
    # Two buffers take turns as the gathers' source and destination; x itself is never written.
    # uint8 images (takes_bytes) are gathered as bytes, a quarter of the traffic, and converted
    # into the first buffer: the floats of converting first, since converting is per pixel.
    order = d["order"]
    due = [k for k in range(4) if prm[_JITTER_OPS[k]] != 0]  # ColorJitter skips a strength of 0
    if not due:
        return K.as_unit_float(x)
    rows = torch.argsort(order, dim=0, stable=True).T  # [4, N]: the images in position p's layout
    counts = torch.nn.functional.one_hot(order, 4).sum(0).tolist()  # [position][adjustment]
    dtype = x.dtype if x.is_floating_point() else torch.float32
    factors = torch.stack([d[name] for name in _JITTER_OPS]).to(device=x.device, dtype=dtype)
    buffers = tuple(torch.empty(x.shape, dtype=dtype, device=x.device) for unused in range(2))
    src, held = x, None  # held: which image each row of src holds (None: the batch order)
    for position in range(4):
        if not any(counts[position][k] for k in due):
            continue  # every image here is due for an adjustment of strength 0
        layout = rows[position]
        dst = buffers[1] if src is buffers[0] else buffers[0]
        # row i of the new layout is image layout[i], which src holds at row where[layout[i]]
        where = (layout if held is None else torch.argsort(held)[layout]).to(x.device)
        if src.dtype == torch.uint8:
            src = K.as_unit_float(torch.index_select(src, 0, where), out=dst)
        else:
            src = torch.index_select(src, 0, where, out=dst)
        held = layout
        drawn = factors[:, layout.to(x.device)]
        start = 0
        for k, count in enumerate(counts[position]):
            end = start + count
            if count and k in due:
                _JITTER_KERNELS[k](src[start:end], drawn[k, start:end], out=src[start:end])
            start = end
    if held is None:
        return K.as_unit_float(x)
    dst = buffers[1] if src is buffers[0] else buffers[0]
    return torch.index_select(src, 0, torch.argsort(held).to(x.device), out=dst)


register(
    Op(
        name="color_jitter",
        label="ColorJitter",
        group="colour",
        help="Random brightness, contrast and saturation factors in [1-s, 1+s] and a hue shift in "
        "[-h, h] of the colour wheel, applied in a random order.",
        params=(
            Param("brightness", "float", 0.4, 0.0, 1.0, 0.05, help="Brightness factor drawn from [1-b, 1+b]."),
            Param("contrast", "float", 0.4, 0.0, 1.0, 0.05, help="Contrast factor drawn from [1-c, 1+c]."),
            Param("saturation", "float", 0.4, 0.0, 1.0, 0.05, help="Saturation factor drawn from [1-s, 1+s]."),
            Param("hue", "float", 0.1, 0.0, 0.5, 0.01, help="Hue shift drawn from [-h, h] (0.5 is half the colour wheel)."),
        ),
        sample=_jitter_sample,
        apply=_jitter_apply,
        takes_bytes=True,
        torchvision_code=lambda prm, size: (
            f"v2.ColorJitter(brightness={prm['brightness']}, contrast={prm['contrast']}, "
            f"saturation={prm['saturation']}, hue={prm['hue']})"
        ),
        describe=lambda d, i: fmt({"b": d["brightness"], "c": d["contrast"], "s": d["saturation"], "h": d["hue"]}, i),
    )
)

register(
    Op(
        name="grayscale",
        label="RandomGrayscale",
        group="colour",
        help="Replace the image by its luma (kept as three channels) with probability p.",
        params=(_p(0.1),),
        sample=lambda n, shape, prm, g, ctx: {"gray": bernoulli(n, prm["p"], g)},
        apply=lambda x, d, prm, ctx: K.apply_to(d["gray"], x, lambda s: K.grayscale(s).expand_as(s).contiguous()),
        torchvision_code=lambda prm, size: f"v2.RandomGrayscale(p={prm['p']})",
        describe=lambda d, i: _("grayscale") if d["gray"][i] else _("colour kept"),
    )
)

register(
    Op(
        name="gaussian_blur",
        label="GaussianBlur",
        group="colour",
        help="Blur with a Gaussian whose sigma is drawn per image.",
        params=(
            Param("kernel_size", "int", 5, 3, 31, 2, unit="px", help="Side of the (odd) kernel in pixels."),
            Param("sigma", "float_range", (0.1, 2.0), 0.01, 10.0, 0.05, unit="px", help="Range of the Gaussian's standard deviation in pixels."),
        ),
        sample=lambda n, shape, prm, g, ctx: {"sigma": uniform(n, *prm["sigma"], g)},
        apply=lambda x, d, prm, ctx: K.gaussian_blur(x, prm["kernel_size"] | 1, d["sigma"]),
        torchvision_code=lambda prm, size: (
            f"v2.GaussianBlur(kernel_size={prm['kernel_size'] | 1}, sigma={tuple(prm['sigma'])})"
        ),
        describe=lambda d, i: _("sigma={sigma:.2f}").format(sigma=d["sigma"][i].item()),
    )
)


def _noise_apply(x, d, prm, ctx):
    noise = d["noise"].to(x.device, x.dtype) * d["applied"].view(-1, 1, 1, 1).to(x.device, x.dtype)
    return (x + prm["sigma"] * noise).clamp_(0, 1)


register(
    Op(
        name="gaussian_noise",
        label="GaussianNoise",
        group="colour",
        help="Add Gaussian noise of standard deviation sigma to every pixel and clip to [0, 1] "
        "(torchvision's GaussianNoise), with probability p.",
        params=(
            _p(1.0),
            Param("sigma", "float", 0.1, 0.0, 1.0, 0.01, help="Standard deviation of the noise, on the [0, 1] pixel scale."),
        ),
        # the noise itself is drawn per image, from the pipeline's generator, like every other draw
        sample=lambda n, shape, prm, g, ctx: {"noise": torch.randn(n, *shape, generator=g),
                                              "applied": bernoulli(n, prm["p"], g)},
        apply=_noise_apply,
        torchvision_code=lambda prm, size: f"v2.RandomApply([v2.GaussianNoise(sigma={prm['sigma']})], p={prm['p']})",
        describe=lambda d, i: _("noise added") if d["applied"][i] else _("no noise"),
    )
)


# ---- occlusion ---------------------------------------------------------------------------------


def _cutout_sample(n, shape, prm, g, ctx):
    unused, h, w = shape
    length = max(1, int(round(prm["size"] * min(h, w))))
    holes = prm["n_holes"]
    # DeVries & Taylor: the centre is uniform over the image, so a hole may be clipped by the
    # border; their code cuts rows y - length//2 to y + length//2 (exclusive), so an odd length
    # loses one row and one column, and we keep that.
    cy = torch.floor(torch.rand(n, holes, generator=g, dtype=torch.float64) * h).long()
    cx = torch.floor(torch.rand(n, holes, generator=g, dtype=torch.float64) * w).long()
    return {"centre_y": cy, "centre_x": cx, "length": torch.full((n,), length), "applied": bernoulli(n, prm["p"], g)}


def _cutout_apply(x, d, prm, ctx):
    half = d["length"] // 2
    side = 2 * half
    rows = side * d["applied"]  # an image that draws no Cutout gets holes of no height
    holes = None  # 0/1 weights of x's dtype, 1 on a hole: paste needs no conversion
    for k in range(d["centre_y"].shape[1]):
        hole = K.box_mask(x.shape[2:], d["centre_y"][:, k] - half, d["centre_x"][:, k] - half, rows, side, x.device,
                          dtype=x.dtype)
        holes = hole if holes is None else holes.maximum(hole)
    return K.paste(x, holes, prm["fill"])


_CUTOUT_HELPER = '''
class Cutout(torch.nn.Module):
    """DeVries & Taylor (2017): zero `n_holes` squares of side `length` with uniform centres."""

    def __init__(self, n_holes, length, fill=0.0, p=1.0):
        super().__init__()
        self.n_holes, self.length, self.fill, self.p = n_holes, length, fill, p

    def forward(self, img):
        if torch.rand(1) >= self.p:
            return img
        img = img.clone()
        h, w = img.shape[-2:]
        for _ in range(self.n_holes):
            y, x = int(torch.randint(h, (1,))), int(torch.randint(w, (1,)))
            y1, y2 = max(0, y - self.length // 2), min(h, y + self.length // 2)
            x1, x2 = max(0, x - self.length // 2), min(w, x + self.length // 2)
            img[..., y1:y2, x1:x2] = self.fill if img.is_floating_point() else round(self.fill * 255)
        return img
'''

register(
    Op(
        name="cutout",
        label="Cutout",
        group="occlusion",
        help="DeVries & Taylor (2017): blank out square holes at uniformly random centres (holes may "
        "be clipped by the border). On CIFAR-10 the paper uses one 16x16 hole, i.e. size 0.5.",
        paper="https://arxiv.org/abs/1708.04552",
        params=(
            _p(1.0),
            Param("n_holes", "int", 1, 1, 10, 1, help="Number of holes per image."),
            Param("size", "float", 0.5, 0.02, 1.0, 0.02, help="Side of each hole as a fraction of the shorter image side."),
            Param("fill", "float", 0.0, 0.0, 1.0, 0.05, help="Grey level of the holes (0 black)."),
        ),
        sample=_cutout_sample,
        apply=_cutout_apply,
        torchvision_code=lambda prm, size: (
            f"Cutout(n_holes={prm['n_holes']}, length={max(1, int(round(prm['size'] * min(size))))}, "
            f"fill={prm['fill']}, p={prm['p']})"
        ),
        torchvision_helper=_CUTOUT_HELPER,
        describe=lambda d, i: _("{length}px holes centred at {centres}").format(
            length=d["length"][i].item(),
            centres=" ".join(f"(y={y},x={x})" for y, x in zip(d["centre_y"][i].tolist(), d["centre_x"][i].tolist())),
        )
        if d["applied"][i] else _("not applied"),
    )
)

_ERASE_VALUES = ("zeros", "random", "mean")


def _erasing_sample(n, shape, prm, g, ctx):
    c, h, w = shape
    top, left, bh, bw, ok = _sample_boxes(n, h, w, prm["scale"], prm["ratio"], g, erasing=True)
    applied = bernoulli(n, prm["p"], g) & ok
    out = {"box": torch.stack((top, left, bh, bw), 1), "applied": applied}
    if prm["value"] == "random":
        # Uniform in [0, 1] as in the paper ("random values in [0, 255]"): our images are not
        # normalised yet, so torchvision's Gaussian noise would leave the valid range.
        out["noise"] = torch.rand(n, c, h, w, generator=g)
    return out


def _erasing_apply(x, d, prm, ctx):
    box = d["box"]
    rows = box[:, 2] * d["applied"]  # an image that draws no erasing gets a box of no height
    mask = K.box_mask(x.shape[2:], box[:, 0], box[:, 1], rows, box[:, 3], x.device, dtype=x.dtype)
    if prm["value"] == "zeros":
        fill = 0.0
    elif prm["value"] == "random":
        fill = d["noise"].to(x)
    else:
        mean = ctx.get("mean", IMAGENET_MEAN)
        mean = mean if len(mean) == x.shape[1] else [sum(mean) / len(mean)] * x.shape[1]
        fill = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return K.paste(x, mask, fill)


IMAGENET_MEAN = (0.485, 0.456, 0.406)

register(
    Op(
        name="random_erasing",
        label="Random Erasing",
        group="occlusion",
        help="Zhong et al. (2017): with probability p, replace a random rectangle (area fraction "
        "`scale`, aspect `ratio`) by zeros, per-pixel random values, or the dataset's mean colour (in "
        "training the training images' mean; in the Lab and the exported code ImageNet's).",
        paper="https://arxiv.org/abs/1708.04896",
        params=(
            _p(0.5),
            Param("scale", "float_range", (0.02, 0.33), 0.01, 1.0, 0.01, help="Range of the erased area as a fraction of the image."),
            Param("ratio", "float_range", (0.3, 3.3), 0.1, 10.0, 0.1, help="Range of the rectangle's aspect ratio."),
            Param("value", "choice", "zeros", choices=_ERASE_VALUES, help="What fills the rectangle: zeros, uniform "
                  "noise per pixel (the paper's choice; torchvision's 'random' is Gaussian, for normalised images), "
                  "or the mean colour."),
        ),
        sample=_erasing_sample,
        apply=_erasing_apply,
        torchvision_code=lambda prm, size: (
            f"v2.RandomErasing(p={prm['p']}, scale={tuple(prm['scale'])}, ratio={tuple(prm['ratio'])}, "
            f"value={ {'zeros': '0', 'random': repr('random'), 'mean': repr(list(IMAGENET_MEAN))}[prm['value']] })"
        ),
        describe=lambda d, i: _("erased top={top} left={left} h={h} w={w}").format(
            **dict(zip(("top", "left", "h", "w"), d["box"][i].tolist()))
        )
        if d["applied"][i] else _("not applied"),
    )
)


# ---- policies ----------------------------------------------------------------------------------
# Learned / searched policies are many small ops chosen at random: torchvision implements them
# faithfully, so each image goes through torchvision's transform, seeded from our generator.


def _seed_sample(n, shape, prm, g, ctx):
    return {"seed": torch.randint(0, 2**31 - 1, (n,), generator=g)}


def _per_image(make):
    def apply(x, d, prm, ctx):
        transform = make(prm)
        out = []
        for img, seed in zip(x, d["seed"].tolist()):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                u8 = (img * 255).round_().to(torch.uint8)
                out.append(transform(u8).to(x.dtype) / 255)
        return torch.stack(out)

    return apply


_POLICIES = {"imagenet": "IMAGENET", "cifar10": "CIFAR10", "svhn": "SVHN"}


def _policy_op(name, label, help, params, make, code):
    register(
        Op(
            name=name, label=label, group="policy", help=help, params=params,
            sample=_seed_sample, apply=_per_image(make), torchvision_code=code,
            describe=lambda d, i: _("policy draw seeded {seed}").format(seed=d["seed"][i].item()),
        )
    )


_policy_op(
    "autoaugment", "AutoAugment",
    "Cubuk et al. (2019): a policy of 25 sub-policies, each two ops with probabilities and "
    "magnitudes, searched on ImageNet, CIFAR-10 or SVHN.",
    (Param("policy", "choice", "cifar10", choices=tuple(_POLICIES), help="Which searched policy to use."),),
    lambda prm: v2.AutoAugment(v2.AutoAugmentPolicy[_POLICIES[prm["policy"]]]),
    lambda prm, size: f"v2.AutoAugment(v2.AutoAugmentPolicy.{_POLICIES[prm['policy']]})",
)
_policy_op(
    "randaugment", "RandAugment",
    "Cubuk et al. (2020): apply num_ops ops chosen uniformly, all at one magnitude.",
    (
        Param("num_ops", "int", 2, 1, 5, 1, help="Ops applied per image."),
        Param("magnitude", "int", 9, 0, 30, 1, help="Strength of every op (torchvision's scale, 0-30)."),
    ),
    lambda prm: v2.RandAugment(num_ops=prm["num_ops"], magnitude=prm["magnitude"]),
    lambda prm, size: f"v2.RandAugment(num_ops={prm['num_ops']}, magnitude={prm['magnitude']})",
)
_policy_op(
    "trivialaugment", "TrivialAugmentWide",
    "Müller & Hutter (2021): one op per image with a uniformly random magnitude; no parameters.",
    (),
    lambda prm: v2.TrivialAugmentWide(),
    lambda prm, size: "v2.TrivialAugmentWide()",
)
_policy_op(
    "augmix", "AugMix",
    "Hendrycks et al. (2020): mix several short chains of ops with Dirichlet weights, then blend with the original.",
    (
        Param("severity", "int", 3, 1, 10, 1, help="Strength of the ops."),
        Param("mixture_width", "int", 3, 1, 5, 1, help="Number of chains mixed."),
        Param("alpha", "float", 1.0, 0.1, 5.0, 0.1, help="Dirichlet/Beta concentration of the mixing weights."),
    ),
    lambda prm: v2.AugMix(severity=prm["severity"], mixture_width=prm["mixture_width"], alpha=prm["alpha"]),
    lambda prm, size: f"v2.AugMix(severity={prm['severity']}, mixture_width={prm['mixture_width']}, alpha={prm['alpha']})",
)
