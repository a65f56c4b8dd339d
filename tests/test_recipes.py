"""Recipes: each is a valid, complete TrainConfig that round-trips, and one trains on a tiny slice."""

import json
import math

import pytest
import torch

import core.data
from core.runs import recipes
from core.training.config import ConfigError, TrainConfig
from core.training.events import Eval, Finished, Started, Step
from core.training.loop import train_events
from core.training.models import PatchWhitening


@pytest.mark.parametrize("name", list(recipes.RECIPES))
def test_every_recipe_is_a_complete_valid_config_that_round_trips(name):
    spec = recipes.RECIPES[name]
    assert spec.title and spec.description
    cfg = recipes.recipe(name)
    assert isinstance(cfg, TrainConfig)
    assert TrainConfig.from_json(cfg.to_json()) == cfg
    # complete: every section is spelled out, so a change of the defaults cannot change a recipe
    assert set(spec.config) == set(TrainConfig().to_dict())
    assert cfg.data.dataset == "cifar10" and cfg.model.name == "fastcnn"


def test_the_one_minute_recipe_differs_only_in_length():
    long, short = recipes.recipe("cpu_fast_cifar"), recipes.recipe("cpu_fast_cifar_1min")
    from core.training.config import diff

    assert set(diff(long, short)) == {"run.epochs", "run.eval_every"}
    assert short.run.epochs < long.run.epochs


def test_dataset_and_overrides_are_applied_and_checked():
    cfg = recipes.recipe("cpu_fast_cifar", dataset="zip:/data/cifar10.zip", overrides={"run.epochs": 3})
    assert (cfg.data.dataset, cfg.run.epochs) == ("zip:/data/cifar10.zip", 3)
    assert cfg.optim == recipes.recipe("cpu_fast_cifar").optim
    with pytest.raises(ConfigError, match="unknown recipe 'cpu_fast'; choose one of cpu_fast_cifar"):
        recipes.recipe("cpu_fast")
    with pytest.raises(ConfigError, match="run.epochs"):
        recipes.recipe("cpu_fast_cifar", overrides={"run.epochs": 0})


def test_the_command_line_prints_a_config_the_trainer_cli_accepts(capsys):
    assert recipes.main(["cpu_fast_cifar", "--dataset", "zip:/data/c.zip"]) == 0
    printed = TrainConfig.from_json(capsys.readouterr().out)
    assert printed == recipes.recipe("cpu_fast_cifar", dataset="zip:/data/c.zip")
    assert recipes.main([]) == 0
    assert "cpu_fast_cifar_1min" in capsys.readouterr().out
    assert recipes.main(["nope"]) == 2


@pytest.fixture
def tiny_cifar(monkeypatch):
    """48 train and 20 test images of CIFAR's shape: classes differ in brightness, so they can be learned."""
    g = torch.Generator().manual_seed(0)

    def images(n):
        y = torch.arange(n) % 10
        x = (y.view(-1, 1, 1, 1) * 20 + torch.randint(0, 60, (n, 3, 32, 32), generator=g)).to(torch.uint8)
        return x, y

    (train_x, train_y), (test_x, test_y) = images(48), images(20)
    bundle = core.data.DatasetBundle(
        name="tiny", train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y,
        classes=tuple(f"c{i}" for i in range(10)), mean=(0.5,) * 3, std=(0.25,) * 3,
    )  # fmt: skip
    monkeypatch.setattr(core.data, "load_dataset", lambda name, **kwargs: bundle)
    return bundle


def test_the_recipe_trains_on_a_tiny_slice_with_its_own_settings(tiny_cifar, monkeypatch):
    import core.training.device

    # as on a CPU with native bfloat16; where it is emulated the run trains in float32 and says so
    # (tests/test_trainer.py, test_bf16_on_a_cpu_is_used_only_where_the_cpu_computes_it_natively)
    monkeypatch.setattr(core.training.device, "cpu_has_fast_bf16", lambda: True)
    cfg = recipes.recipe("cpu_fast_cifar_1min", overrides={"run.batch_size": 16, "run.threads": 1})
    events = list(train_events(cfg))
    started, final = events[0], events[-1]
    assert isinstance(started, Started) and isinstance(final, Finished), getattr(final, "message", final)
    # the recipe's precision is in force on the CPU, not silently dropped
    assert started.device == "cpu (1 thread), bfloat16 autocast"
    steps = [e for e in events if isinstance(e, Step)]
    assert len(steps) == cfg.run.epochs * (48 // 16)
    assert all(math.isfinite(s.loss) for s in steps)
    assert [e.epoch for e in events if isinstance(e, Eval)] == [1, 2]
    assert 0.0 <= final.metrics["test_acc"] <= 1.0


def test_the_whitening_stem_is_fitted_on_the_first_training_batch(tiny_cifar):
    from core.training.models import build_model

    model = build_model("fastcnn", in_channels=3, num_classes=10, **recipes.recipe("cpu_fast_cifar").model.options)
    stem = model.stem[0]
    assert isinstance(stem, PatchWhitening) and not stem.fitted
    before = stem.weight.clone()
    model.eval()(torch.randn(2, 3, 32, 32))
    assert torch.equal(stem.weight, before)  # evaluation never fits
    model.train()(torch.randn(8, 3, 32, 32))
    assert stem.fitted and not torch.equal(stem.weight, before)
    state = json.dumps(sorted(model.state_dict()))
    assert "stem.0.weight" in state and "stem.0.fitted" in state  # fitted filters are saved with the weights
