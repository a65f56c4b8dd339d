"""Permuted pixels: the same fixed shuffle of pixel positions applied to every image.

The course's MNIST experiment: a fully connected network does not care where a pixel sits, so a
fixed permutation of positions leaves it exactly as good as before (it is a relabelling of its
inputs); a CNN's convolutions and pooling assume that neighbouring pixels belong together, and
lose that prior.

    order = pixel_permutation(28, 28, seed=0)   # int64 [784], a bijection of positions
    x = permute_pixels(x, order)                # [..., 28, 28]; every channel moves alike
    x = unpermute_pixels(x, order)              # back to the original image

The order depends only on the image size and the seed (data.seed in a run), so every run with
the same data seed sees the same permutation, in its train split, its test split and when its
model later classifies an uploaded picture.
"""

from __future__ import annotations

import hashlib

import torch

from core.i18n import _


def pixel_permutation(height: int, width: int, seed: int) -> torch.Tensor:
    """A fixed random order of the height * width pixel positions, drawn from `seed`."""
    if height < 1 or width < 1:
        raise ValueError(_("image sides must be positive, got {height}x{width}").format(height=height, width=width))
    # Its own tag, so that the permutation never shares random numbers with the dataset's draws.
    digest = hashlib.sha256(f"{seed}:permute-pixels".encode()).digest()
    generator = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)
    return torch.randperm(height * width, generator=generator)


def permute_pixels(x: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """Images [..., H, W] with pixel i of the output taken from position order[i] of the input."""
    height, width = x.shape[-2:]
    if order.numel() != height * width:
        raise ValueError(
            _("a permutation of {positions} positions does not fit {height}x{width} images").format(
                positions=order.numel(), height=height, width=width
            )
        )
    flat = x.reshape(*x.shape[:-2], height * width)
    return flat[..., order.to(x.device)].reshape(x.shape)


def unpermute_pixels(x: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """The inverse of permute_pixels: the images as they were before the shuffle."""
    return permute_pixels(x, torch.argsort(order))
