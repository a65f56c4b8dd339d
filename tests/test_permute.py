"""Permuted pixels: one fixed bijection of positions per (size, seed), and an MLP cannot tell."""

import pytest
import torch

from core.data.permute import permute_pixels, pixel_permutation, unpermute_pixels
from core.training.models import build_model


def test_the_permutation_is_a_fixed_bijection_drawn_from_the_seed():
    order = pixel_permutation(28, 28, seed=0)
    assert order.dtype == torch.int64 and torch.equal(order.sort().values, torch.arange(28 * 28))
    assert torch.equal(order, pixel_permutation(28, 28, seed=0))  # the same for every run with this seed
    assert not torch.equal(order, pixel_permutation(28, 28, seed=1))
    assert (order != torch.arange(28 * 28)).float().mean() > 0.9  # really shuffled, not nearly the identity
    assert pixel_permutation(32, 16, seed=0).shape == (512,)
    with pytest.raises(ValueError, match="positive"):
        pixel_permutation(0, 5, seed=0)


def test_every_channel_moves_alike_and_unpermuting_restores_the_images():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (4, 3, 6, 5), generator=g, dtype=torch.uint8)
    order = pixel_permutation(6, 5, seed=3)
    y = permute_pixels(x, order)
    assert y.dtype == x.dtype and y.shape == x.shape
    for i, source in enumerate(order.tolist()):  # output position i holds input position order[i]
        assert torch.equal(y[:, :, i // 5, i % 5], x[:, :, source // 5, source % 5])
    assert torch.equal(unpermute_pixels(y, order), x)
    assert torch.equal(permute_pixels(x[0], order), y[0])  # a single image [C, H, W] too
    with pytest.raises(ValueError, match="does not fit"):
        permute_pixels(x, pixel_permutation(5, 5, seed=3))


def test_an_mlp_on_permuted_pixels_is_the_same_mlp_with_its_inputs_relabelled():
    """Whatever an MLP computes from the plain images, the one whose first-layer columns are permuted
    computes from the permuted images: the permutation takes nothing away from a fully connected net."""
    torch.manual_seed(0)
    c, side = 3, 8
    mlp = build_model("mlp", in_channels=c, num_classes=4, image_size=side, hidden=[16]).eval()
    x = torch.rand(5, c, side, side)
    order = pixel_permutation(side, side, seed=0)
    relabelled = build_model("mlp", in_channels=c, num_classes=4, image_size=side, hidden=[16]).eval()
    relabelled.load_state_dict(mlp.state_dict())
    first = relabelled.body[1]
    # Flattened inputs are channel-major: column c * H * W + i of the permuted input is pixel order[i].
    columns = torch.cat([ch * side * side + order for ch in range(c)])
    with torch.no_grad():
        first.weight.copy_(mlp.body[1].weight[:, columns])
    assert torch.allclose(relabelled(permute_pixels(x, order)), mlp(x), atol=1e-6)
