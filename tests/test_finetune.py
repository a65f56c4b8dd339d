"""Fine-tuning options on tiny models and synthetic data: the head only, freeze then unfreeze, the
head's learning-rate multiplier, frozen batch-norm statistics, and input size and normalisation
following a pretrained model."""

import pytest
import torch
import torchvision

import core.data
from core.training import batches, loop, models
from core.training.config import ConfigError, TrainConfig
from core.training.events import Eval, Failed, Finished, Started, Step

CLASSES = ("red", "green", "blue")


def synthetic(image_size=None, **_) -> core.data.DatasetBundle:
    """96 train and 30 test images of 3 classes, each a noisy picture tinted by its class's channel."""
    side = image_size or 16
    g = torch.Generator().manual_seed(0)

    def split(n):
        y = torch.arange(n) % len(CLASSES)
        x = torch.randint(0, 120, (n, 3, side, side), generator=g)
        x[torch.arange(n), y] += 120
        return x.to(torch.uint8), y

    train_x, train_y = split(96)
    test_x, test_y = split(30)
    return core.data.DatasetBundle(
        name="synthetic", train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y, classes=CLASSES,
        mean=(0.3, 0.3, 0.3), std=(0.2, 0.2, 0.2),
    )


@pytest.fixture(autouse=True)
def synthetic_data(monkeypatch):
    monkeypatch.setattr(core.data, "load_dataset", lambda name, **kwargs: synthetic(**kwargs))


def tiny(**sections) -> TrainConfig:
    """A narrow FastCNN with a plain conv stem (batch norm in the body), 3 epochs of 3 steps."""
    tree = {
        "model": {"options": {"width": 0.25, "depth": 1, "stem": "conv"}},
        "optim": {"lr": 0.05},
        "run": {"epochs": 3, "batch_size": 32, "threads": 1},
    }
    for section, values in sections.items():
        tree[section] = {**tree.get(section, {}), **values}
    return TrainConfig.from_dict(tree)


class Watch:
    """Runs a config and snapshots the live model's body, head and batch-norm buffers after each epoch."""

    def __init__(self, monkeypatch):
        self.model = self.optimizer = None
        build_model, build_optimizer = loop.build_model, loop.build_optimizer

        def keep_model(*args, **kwargs):
            self.model = build_model(*args, **kwargs)
            return self.model

        def keep_optimizer(*args, **kwargs):
            self.optimizer = build_optimizer(*args, **kwargs)
            return self.optimizer

        monkeypatch.setattr(loop, "build_model", keep_model)
        monkeypatch.setattr(loop, "build_optimizer", keep_optimizer)

    def snapshot(self) -> dict[str, dict[str, torch.Tensor]]:
        groups = models.param_groups(self.model)
        head_ids = {id(p) for p in groups["head"]}
        params = {n: p.detach().clone() for n, p in self.model.named_parameters()}
        named = dict(self.model.named_parameters())
        return {
            "body": {n: v for n, v in params.items() if id(named[n]) not in head_ids},
            "head": {n: v for n, v in params.items() if id(named[n]) in head_ids},
            "bn_stats": {n: b.detach().clone() for n, b in self.model.named_buffers() if "running" in n},
        }

    def run(self, cfg: TrainConfig, on_step=None) -> list[dict]:
        """Snapshots at the start and after every epoch; raises on a failed run."""
        snaps = []
        for event in loop.train_events(cfg):
            if isinstance(event, Started):
                snaps.append(self.snapshot())
            elif isinstance(event, Step) and on_step:
                on_step(self.optimizer, event)
            elif isinstance(event, Eval):
                snaps.append(self.snapshot())
            elif isinstance(event, Failed):
                raise AssertionError(event.message)
        return snaps


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def all_changed(a: dict, b: dict) -> bool:
    return all(not torch.equal(a[k], b[k]) for k in a)


# ---- the three ways to train -------------------------------------------------------------------


def test_head_only_leaves_every_body_parameter_unchanged(monkeypatch):
    watch = Watch(monkeypatch)
    snaps = watch.run(tiny(optim={"train_head_only": True}))
    assert snaps[0]["body"] and same(snaps[0]["body"], snaps[-1]["body"])
    assert all_changed(snaps[0]["head"], snaps[-1]["head"])
    assert all(not p.requires_grad for p in models.param_groups(watch.model)["body"])


def test_the_body_is_frozen_for_n_epochs_then_trains(monkeypatch):
    watch = Watch(monkeypatch)
    start, after1, after2, after3 = watch.run(tiny(optim={"freeze_body_epochs": 2}))
    assert same(start["body"], after1["body"]) and same(start["body"], after2["body"])
    assert not same(after2["body"], after3["body"])
    conv_weights = [n for n in start["body"] if n.endswith("weight") and start["body"][n].dim() == 4]
    assert conv_weights and all(not torch.equal(after2["body"][n], after3["body"][n]) for n in conv_weights)
    assert all_changed(start["head"], after1["head"]) and all_changed(after1["head"], after2["head"])


def test_everything_trains_by_default(monkeypatch):
    watch = Watch(monkeypatch)
    start, after1, *_ = watch.run(tiny())
    conv_weights = [n for n in start["body"] if start["body"][n].dim() == 4]
    assert all(not torch.equal(start["body"][n], after1["body"][n]) for n in conv_weights)
    assert not same(start["bn_stats"], after1["bn_stats"])  # batch norm follows the data when not frozen


def test_the_head_learns_at_head_lr_mult_times_the_body_rate_at_every_step(monkeypatch):
    ratios = []

    def record(optimizer, event):
        lrs = {g["name"]: g["lr"] for g in optimizer.param_groups}
        assert lrs["body"] == pytest.approx(event.lr)
        if lrs["body"] > 0:
            ratios.append(lrs["head"] / lrs["body"])

    Watch(monkeypatch).run(tiny(optim={"head_lr_mult": 10.0, "freeze_body_epochs": 1}), on_step=record)
    assert len(ratios) >= 8 and ratios == pytest.approx([10.0] * len(ratios))


def test_frozen_batch_norm_statistics_stay_while_the_body_trains(monkeypatch):
    watch = Watch(monkeypatch)
    modes = []  # (any body batch norm training?, model training?) at every step, evaluation in between

    def record(optimizer, event):
        modes.append((any(m.training for m in models.body_batchnorms(watch.model)), watch.model.training))

    start, *_, end = watch.run(tiny(optim={"freeze_bn_stats": True}), on_step=record)
    assert start["bn_stats"] and same(start["bn_stats"], end["bn_stats"])
    assert not same(start["body"], end["body"])  # convs and the batch-norm scales still learn
    bn_weights = [n for n, m in watch.model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(not torch.equal(start["body"][f"{n}.weight"], end["body"][f"{n}.weight"]) for n in bn_weights)
    assert len(modes) == 9 and set(modes) == {(False, True)}


# ---- a pretrained torchvision model in miniature ----------------------------------------------


@pytest.fixture
def fake_imagenet(monkeypatch):
    """MobileNetV2 'ImageNet weights' that are a seeded random init: no file and no network needed."""
    torch.manual_seed(0)
    reference = torchvision.models.mobilenet_v2().state_dict()
    monkeypatch.setattr(torchvision.models._api.WeightsEnum, "get_state_dict", lambda *a, **k: reference)
    return reference


def test_mobilenet_head_only_with_frozen_statistics_keeps_the_whole_body(monkeypatch, fake_imagenet):
    cfg = tiny(
        model={"name": "tv_mobilenet_v2", "options": {"pretrained": True}},
        data={"image_size": 32},
        optim={"train_head_only": True, "freeze_bn_stats": True, "head_lr_mult": 10.0},
        run={"epochs": 1, "batch_size": 16},
    )
    watch = Watch(monkeypatch)
    start, end = watch.run(cfg)
    body_state = {k: v for k, v in fake_imagenet.items() if not k.startswith("classifier.")}
    loaded = {k: v for k, v in watch.model.state_dict().items() if not k.startswith("classifier.")}
    assert same(body_state, loaded)  # parameters and batch-norm buffers as they were loaded
    assert same(start["bn_stats"], end["bn_stats"]) and all_changed(start["head"], end["head"])
    assert watch.model.classifier[1].out_features == len(CLASSES)


def test_input_size_and_normalisation_follow_a_pretrained_model():
    pretrained = tiny(model={"name": "tv_mobilenet_v2", "options": {"pretrained": True}})
    data = batches.load_data(pretrained, torch.device("cpu"))
    assert data.bundle.image_size == 224 and data.bundle.mean == models.IMAGENET_MEAN
    assert data.bundle.std == models.IMAGENET_STD and "ImageNet's mean and std" in data.bundle.note
    assert "224 px" in data.bundle.note

    smaller = batches.load_data(TrainConfig.from_dict({**pretrained.to_dict(), "data": {"image_size": 128}}), torch.device("cpu"))
    assert smaller.bundle.image_size == 128 and smaller.bundle.mean == models.IMAGENET_MEAN

    # from scratch, the same architecture keeps the dataset's own size and statistics
    scratch = batches.load_data(tiny(model={"name": "tv_mobilenet_v2", "options": {}}), torch.device("cpu"))
    assert scratch.bundle.image_size == 16 and scratch.bundle.mean == (0.3, 0.3, 0.3)
    assert "ImageNet" not in scratch.bundle.note


def test_a_finished_run_records_the_imagenet_statistics_for_prediction(monkeypatch, fake_imagenet):
    cfg = tiny(
        model={"name": "tv_mobilenet_v2", "options": {"pretrained": True}},
        data={"image_size": 32}, optim={"train_head_only": True}, run={"epochs": 1, "batch_size": 32},
    )
    events = list(loop.train_events(cfg))
    started, final = events[0], events[-1]
    assert isinstance(final, Finished), final
    assert started.mean == models.IMAGENET_MEAN and started.image_size == 32


# ---- options the config or the model cannot honour ---------------------------------------------


def test_conflicting_or_impossible_options_fail_with_the_key_named():
    with pytest.raises(ConfigError, match="optim.freeze_body_epochs must be 0 when optim.train_head_only is on"):
        tiny(optim={"train_head_only": True, "freeze_body_epochs": 1})
    with pytest.raises(ConfigError, match="optim.freeze_bn_stats must be true or false"):
        tiny(optim={"freeze_bn_stats": "yes"})
    with pytest.raises(ConfigError, match="model.init must be default when the model starts from ImageNet weights"):
        tiny(model={"name": "tv_mobilenet_v2", "init": "kaiming", "options": {"pretrained": True}})

    def failure(cfg):
        final = list(loop.train_events(cfg))[-1]
        assert isinstance(final, Failed)
        return final.message

    mlp = {"name": "mlp", "options": {"hidden": [8]}}
    assert "optim.freeze_bn_stats needs batch-norm layers, and mlp" in failure(tiny(model=mlp, optim={"freeze_bn_stats": True}))
    linear = {"name": "mlp", "options": {"hidden": []}}
    assert "optim.train_head_only needs a model with a separate head" in failure(
        tiny(model=linear, optim={"train_head_only": True})
    )
