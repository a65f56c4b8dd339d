"""The config tree: defaults, exact JSON round trips, loud errors, diffs and overrides."""

import dataclasses
import inspect
import json

import pytest

from core.augment import Pipeline
from core.training import config as config_module
from core.training.config import ConfigError, TrainConfig, apply_overrides, diff, flatten, parse_value

NON_DEFAULT = {
    "data": {"dataset": "shapes", "variant": "left", "image_size": 24, "subset": 0.5, "seed": 3, "permute_pixels": True},
    "model": {"name": "fastcnn", "init": "xavier", "options": {"width": 0.5}, "init_from_run": "xyz"},
    "optim": {"name": "adamw", "lr": 0.003, "weight_decay": 0.05, "head_lr_mult": 10, "freeze_body_epochs": 1},
    "schedule": {"name": "step", "milestones": [0.3, 0.6], "gamma": 0.2, "warmup": 2, "warmup_unit": "steps"},
    "augment": {"train": [{"op": "hflip", "params": {"p": 0.5}}, {"op": "pad_crop", "params": {"padding": 2}}]},
    "tricks": {"label_smoothing": 0.1, "mixup_alpha": 0.2, "mix_prob": 0.5, "teacher_run_id": "abc"},
    "run": {"epochs": 3, "batch_size": 32, "seed": 7, "device": "cpu", "threads": 1, "amp": "off"},
}


def test_the_default_is_the_quick_cpu_run():
    cfg = TrainConfig()
    assert (cfg.data.dataset, cfg.model.name) == ("shapes", "fastcnn")
    assert (cfg.optim.name, cfg.optim.nesterov, cfg.optim.lr) == ("sgd", True, 0.05)
    assert (cfg.run.batch_size, cfg.run.epochs, cfg.run.device) == (64, 2, "auto")
    assert cfg.run.compile is False and cfg.run.channels_last is False


@pytest.mark.parametrize("tree", [{}, NON_DEFAULT])
def test_json_round_trip_is_exact(tree):
    cfg = TrainConfig.from_dict(tree)
    text = cfg.to_json()
    again = TrainConfig.from_json(text)
    assert again == cfg
    assert again.to_json() == text
    assert TrainConfig.from_dict(json.loads(text)).to_dict() == json.loads(text)


def test_values_are_stored_in_canonical_form():
    cfg = TrainConfig.from_dict(NON_DEFAULT)
    assert cfg.schedule.milestones == (0.3, 0.6)  # lists become tuples: the config stays immutable
    assert isinstance(cfg.optim.head_lr_mult, float)  # 10 -> 10.0, so JSON text is stable
    assert cfg.augment.train[0] == {"op": "hflip", "params": {"p": 0.5}, "enabled": True}
    # Steps are stored complete, the defaults filled in, so the run records exactly what it did.
    assert list(cfg.augment.train) == Pipeline.from_list(NON_DEFAULT["augment"]["train"]).to_list()
    assert set(cfg.augment.train[1]["params"]) > {"padding"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.optim.lr = 1.0


def test_partial_dicts_keep_the_other_defaults():
    cfg = TrainConfig.from_dict({"optim": {"lr": 0.1}})
    assert cfg.optim.lr == 0.1 and cfg.optim.momentum == TrainConfig().optim.momentum
    assert cfg.run == TrainConfig().run


@pytest.mark.parametrize(
    "tree,names",
    [
        ({"optimiser": {}}, ["unknown key 'optimiser'", "did you mean 'optim'", "data, model, optim"]),
        ({"optim": {"lrr": 0.1}}, ["unknown key 'optim.lrr'", "did you mean 'lr'", "allowed keys in optim:", "momentum"]),
        ({"run": {"epochs": 2, "gpu": True}}, ["unknown key 'run.gpu'", "batch_size"]),
    ],
)
def test_unknown_keys_are_rejected_with_the_key_and_the_allowed_ones(tree, names):
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_dict(tree)
    for name in names:
        assert name in str(info.value)


@pytest.mark.parametrize(
    "tree,message",
    [
        ({"optim": {"lr": -1}}, "optim.lr must be in (0, 1_000_000] (got -1.0)"),
        ({"optim": {"lr": "fast"}}, "optim.lr must be a number, got 'fast'"),
        ({"optim": {"name": "rmsprop"}}, "optim.name must be one of sgd, adam, adamw, adabound"),
        ({"optim": {"momentum": 1.0}}, "optim.momentum must be in [0, 1)"),
        ({"optim": {"momentum": 0.0}}, "optim.nesterov needs momentum > 0"),
        ({"run": {"epochs": 0}}, "run.epochs must be 1..10000 (got 0)"),
        ({"run": {"epochs": 2.5}}, "run.epochs must be an integer, got 2.5"),
        ({"run": {"batch_size": True}}, "run.batch_size must be an integer, got True"),
        ({"run": {"device": "tpu"}}, "run.device must be auto, cpu, cuda, cuda:N or mps"),
        ({"run": {"amp": "fp8"}}, "run.amp must be one of auto, off, bf16, fp16"),
        ({"data": {"dataset": "imagenet"}}, "data.dataset must be one of shapes"),
        ({"data": {"subset": 1.5}}, "data.subset must be None or in (0, 1]"),
        ({"data": {"dataset": "cifar10", "variant": "left"}}, "data.variant must be None for cifar10"),
        ({"model": {"name": "alexnet"}}, "model.name must be one of"),
        ({"model": {"options": {"widht": 2}}}, "model.options: fastcnn: unknown option(s) ['widht']"),
        ({"schedule": {"milestones": [0.8, 0.2]}}, "schedule.milestones must be in increasing order"),
        ({"schedule": {"milestones": [0.5, 1.5]}}, "schedule.milestones must be in (0, 1) each"),
        ({"schedule": {"t_mult": 0}}, "schedule.t_mult must be 1..100"),
        ({"schedule": {"warmup": 2}}, "schedule.warmup (2 epochs) must be shorter than run.epochs (2)"),
        ({"schedule": {"warmup_kind": "cosine"}}, "schedule.warmup_kind must be one of linear, gradual"),
        ({"tricks": {"label_smoothing": 1.0}}, "tricks.label_smoothing must be in [0, 1)"),
        ({"tricks": {"mixup_alpha": -0.1}}, "tricks.mixup_alpha must be in [0, 10]"),
        ({"tricks": {"distill_alpha": 2}}, "tricks.distill_alpha must be in [0, 1]"),
        ({"augment": {"train": [{"op": "twirl"}]}}, "augment.train: "),
        ({"augment": {"train": [{"op": "hflip", "params": {"p": 2}}]}}, "augment.train: "),
        ({"optim": {"freeze_body_epochs": 9}}, "optim.freeze_body_epochs (9) must not exceed run.epochs (2)"),
        ({"model": {"init_from_run": " "}}, "model.init_from_run must be None or a run id"),
        ({"run": []}, "run must be a JSON object"),
    ],
)
def test_bad_values_fail_with_a_message_naming_the_key(tree, message):
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_dict(tree)
    assert message in str(info.value)


def test_invalid_json_is_a_config_error():
    with pytest.raises(ConfigError, match="not valid JSON"):
        TrainConfig.from_json("{optim: 1}")


def test_every_field_is_declared_with_a_label_help_and_range():
    sections = [c for c in vars(config_module).values()
                if inspect.isclass(c) and dataclasses.is_dataclass(c) and c.__module__ == config_module.__name__
                and c is not TrainConfig]
    assert len(sections) == 7
    params = config_module.config_params()
    for cls in sections:
        for f in dataclasses.fields(cls):
            p = params[f"{cls.section}.{f.name}"]
            assert p.label and p.help.strip(), f"{cls.section}.{f.name} has no label or help"
            if p.numeric:
                assert p.low is not None and p.high is not None, f"{cls.section}.{f.name} has no range"
                defaults = [] if p.default is None else p.default if p.kind.endswith("_list") else [p.default]
                assert all(p.in_range(v) for v in defaults), f"{cls.section}.{f.name}'s default is out of its range"
            if p.kind == "choice":
                assert p.default in p.choices
            if p.optional:
                assert p.none_means, f"{cls.section}.{f.name} does not say what None means"
    assert len(params) == sum(len(dataclasses.fields(c)) for c in sections)


@pytest.mark.parametrize(
    "key, bad, message",
    [
        ("optim.momentum", 1.0, "optim.momentum must be in [0, 1) (got 1.0)"),
        ("tricks.cutmix_alpha", 11.0, "tricks.cutmix_alpha must be in [0, 10] (got 11.0)"),
        ("data.val_ratio", 0.9, "data.val_ratio must be in [0.05, 0.5] (got 0.9)"),
        ("run.threads", 300, "run.threads must be 0..256 (got 300)"),
        ("schedule.t0_unit", "hours", "schedule.t0_unit must be one of epochs, steps (got 'hours')"),
    ],
)
def test_the_declared_range_is_the_one_validated(key, bad, message):
    p = config_module.config_params()[key]
    assert not (p.in_range(bad) if p.numeric else bad in p.choices)
    with pytest.raises(ConfigError) as info:
        apply_overrides(TrainConfig(), {key: bad})
    assert message in str(info.value)


def test_the_json_schema_comes_from_the_declarations():
    schema = config_module.json_schema()
    lr = schema["properties"]["optim"]["properties"]["lr"]
    assert lr["exclusiveMinimum"] == 0 and lr["maximum"] == 1e6 and lr["default"] == 0.05
    assert lr["title"] == "Peak learning rate"
    size = schema["properties"]["data"]["properties"]["image_size"]
    assert {"type": "null"} in size["anyOf"] and size["title"] == "Image size (px)"
    assert schema["properties"]["schedule"]["properties"]["name"]["enum"] == list(config_module.SCHEDULES)
    assert schema["properties"]["run"]["additionalProperties"] is False
    assert set(schema["properties"]) == set(TrainConfig().to_dict())


def test_diff_lists_the_dotted_keys_that_differ():
    a = TrainConfig()
    b = TrainConfig.from_dict({"optim": {"lr": 0.1}, "run": {"seed": 2}, "model": {"options": {"width": 0.5}}})
    assert diff(a, b) == {"optim.lr": (0.05, 0.1), "run.seed": (0, 2), "model.options": ({}, None),
                          "model.options.width": (None, 0.5)}
    assert diff(a, a) == {}
    assert diff(a.to_dict(), b) == diff(a, b)
    assert flatten(a)["schedule.milestones"] == [0.5, 0.75]


def test_overrides_set_dotted_keys_and_are_validated():
    cfg = apply_overrides(TrainConfig(), {"optim.lr": parse_value("0.2"), "data.variant": parse_value("left"),
                                          "model.options.width": parse_value("0.5"), "run.compile": parse_value("true")})
    assert (cfg.optim.lr, cfg.data.variant, cfg.model.options, cfg.run.compile) == (0.2, "left", {"width": 0.5}, True)
    with pytest.raises(ConfigError, match="unknown key 'optim.lrr'"):
        apply_overrides(TrainConfig(), {"optim.lrr": 1})
    with pytest.raises(ConfigError, match="unknown key 'optimiser'"):
        apply_overrides(TrainConfig(), {"optimiser.lr": 1})
    assert parse_value("null") is None and parse_value("[1, 2]") == [1, 2] and parse_value("cuda:0") == "cuda:0"
