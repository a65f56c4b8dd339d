"""Where a model looks (core.runs.explain): Grad-CAM against its closed form, every model, permuted pixels."""
import numpy as np
import pytest
import torch
from torch import nn

from core.data.permute import permute_pixels, pixel_permutation
from core.runs import explain
from core.runs.predict import LoadedModel
from core.training.models import MODELS, build_model


def loaded(model: nn.Module, channels: int = 3, size: int = 32, order=None, classes: int = 5) -> LoadedModel:
    shape = (1, channels, 1, 1)
    return LoadedModel(run_id="test", model=model.eval(), classes=tuple(f"c{i}" for i in range(classes)),
                       in_channels=channels, image_size=size, mean=torch.full(shape, 0.5), std=torch.full(shape, 0.25),
                       pixel_order=order)


def test_grad_cam_of_a_pooled_linear_head_is_the_class_activation_map():
    """Global average pooling then one linear layer: Grad-CAM's weights are the class's linear
    weights over the number of positions, so its map is Zhou et al.'s CAM, scaled."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 4))
    model.eval()
    x = torch.randn(3, 3, 8, 8)
    assert explain.feature_layer(model, x) == "1"  # the ReLU's 8x8 output; the pooled 1x1 is not a map
    maps, logits = explain.grad_cam(model, x, "1")
    features = model[1](model[0](x))
    chosen = logits.argmax(1)
    cam = torch.relu(torch.einsum("nkhw,nk->nhw", features, model[4].weight[chosen]))
    expected = cam / cam.flatten(1).amax(1).view(-1, 1, 1)
    assert torch.allclose(maps, expected, atol=1e-5)
    assert all(p.grad is None for p in model.parameters())  # the shared model's weights are left alone


def test_another_class_gives_its_own_map():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    x = torch.randn(1, 1, 6, 6)
    first, unused = explain.grad_cam(model.eval(), x, "1", torch.tensor([0]))
    second, unused = explain.grad_cam(model, x, "1", torch.tensor([2]))
    assert not torch.allclose(first, second)


CASES = [(name, channels) for name in MODELS for channels in (1, 3)]


@pytest.mark.parametrize("name,channels", CASES, ids=[f"{n}-c{c}" for n, c in CASES])
def test_every_model_gets_a_map_at_its_input_size(name, channels):
    torch.manual_seed(0)
    size = 32
    model = build_model(name, in_channels=channels, num_classes=5, image_size=size)
    maps = explain.explain_loaded(loaded(model, channels, size), torch.rand(2, channels, 40, 40))
    assert len(maps) == 2
    for m in maps:
        assert m.heat.shape == (size, size) and torch.isfinite(m.heat).all()
        assert 0 <= float(m.heat.min()) and float(m.heat.max()) <= 1
        assert 0 < m.probability <= 1 and m.class_name == f"c{m.class_index}"
    if name == "mlp":
        assert maps[0].method.startswith("input gradients")
    else:
        assert maps[0].method.startswith("Grad-CAM on ")
    assert all(p.grad is None for p in model.parameters())


def test_a_map_from_permuted_pixels_is_put_back_in_the_pictures_order():
    torch.manual_seed(0)
    size = 16
    order = pixel_permutation(size, size, seed=3)
    model = build_model("fastcnn", in_channels=3, num_classes=5, image_size=size)
    image = torch.rand(3, size, size)
    seen = explain.explain_loaded(loaded(model, 3, size, order), image)[0].heat
    # what the model computed on the permuted picture, in the order it saw it
    x = loaded(model, 3, size).prepare(permute_pixels(image, order))
    in_its_order, unused = explain.grad_cam(model, x, explain.feature_layer(model, x))
    assert torch.allclose(permute_pixels(seen, order), in_its_order[0], atol=1e-6)


def test_the_overlay_keeps_the_picture_where_the_map_is_cold():
    image = np.full((4, 4, 3), 200, dtype=np.uint8)
    heat = torch.zeros(2, 2)
    heat[0, 0] = 1.0
    out = explain.overlay(image, heat, alpha=0.5)
    assert out.shape == (4, 4, 3) and out.dtype == np.uint8
    cold = explain.colour(np.zeros((1, 1)))[0, 0].astype(float)
    np.testing.assert_allclose(out[3, 3], (200 * 0.75 + cold * 0.25).round(), atol=1)
    hot = explain.colour(np.ones((1, 1)))[0, 0]
    assert np.abs(out[0, 0].astype(int) - hot.astype(int)).sum() < np.abs(out[3, 3].astype(int) - hot.astype(int)).sum()
    gray = explain.overlay(np.full((4, 4), 10, dtype=np.uint8), heat)
    assert gray.shape == (4, 4, 3)
