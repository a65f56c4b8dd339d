"""`python -m core.cli`: end to end in a subprocess, and the argument handling in-process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.cli import EXIT_FAILED, EXIT_USAGE, main
from core.runs import store
from core.training.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
QUICK = ["--subset", "0.04", "--epochs", "1", "--batch-size", "32", "--set", "data.image_size=16",
         "--set", "model.options.width=0.25", "--set", "model.options.depth=1", "--set", "run.threads=1"]


def printed_config(capsys, *argv) -> TrainConfig:
    assert main(["--print-config", *argv]) == 0
    return TrainConfig.from_json(capsys.readouterr().out)


def test_cli_trains_on_the_embedded_dataset_and_records_the_run(auglab_home):
    env = {**os.environ, "AUGLAB_HOME": str(auglab_home), "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "core.cli", *QUICK, "--mixup", "0.2", "--name", "from the cli",
         "--augment", '[{"op": "hflip", "params": {"p": 0.5}}]'],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "recorded in" in out and "epoch 1: train loss" in out and "finished: test acc" in out
    run_id = out.split("run ", 1)[1].split()[0]
    record = store.get_run(run_id)
    assert (record.status, record.name) == ("finished", "from the cli")
    cfg = record.train_config()
    assert (cfg.tricks.mixup_alpha, cfg.data.subset, cfg.augment.train[0]["op"]) == (0.2, 0.04, "hflip")
    assert len(store.metrics(run_id, "epoch")) == 1
    assert (record.folder / "weights.pt").exists()


def test_flags_build_the_config_with_the_documented_precedence(capsys, tmp_path):
    config_file = tmp_path / "run.json"
    config_file.write_text(TrainConfig.from_dict({"optim": {"lr": 0.3}, "run": {"epochs": 7}}).to_json())
    cfg = printed_config(capsys, "--config", str(config_file))
    assert (cfg.optim.lr, cfg.run.epochs) == (0.3, 7)
    cfg = printed_config(capsys, "--config", str(config_file), "--lr", "0.1")
    assert (cfg.optim.lr, cfg.run.epochs) == (0.1, 7)  # a flag beats the file
    cfg = printed_config(capsys, "--config", str(config_file), "--lr", "0.1", "--set", "optim.lr=0.2")
    assert cfg.optim.lr == 0.2  # --set beats the flags

    cfg = printed_config(
        capsys, "--dataset", "shapes", "--variant", "few_colours", "--optimizer", "adamw", "--schedule", "onecycle",
        "--cutmix", "1.0", "--label-smoothing", "0.1", "--seed", "4", "--device", "cpu", "--teacher", "abc",
    )
    assert (cfg.data.variant, cfg.optim.name, cfg.schedule.name, cfg.run.seed, cfg.run.device) == (
        "few_colours", "adamw", "onecycle", 4, "cpu")
    assert (cfg.tricks.cutmix_alpha, cfg.tricks.label_smoothing, cfg.tricks.teacher_run_id) == (1.0, 0.1, "abc")


def test_permute_pixels_and_init_from_flags(capsys, tmp_path):
    cfg = printed_config(capsys, "--model", "mlp", "--permute-pixels", "--init-from", "20250101-000000-abcdef")
    assert (cfg.model.name, cfg.data.permute_pixels, cfg.model.init_from_run) == ("mlp", True, "20250101-000000-abcdef")
    assert printed_config(capsys).data.permute_pixels is False
    # without the flag, a config file's choice stands (the flag only ever switches it on)
    config_file = tmp_path / "run.json"
    config_file.write_text(TrainConfig.from_dict({"data": {"permute_pixels": True}}).to_json())
    assert printed_config(capsys, "--config", str(config_file)).data.permute_pixels is True


def test_changing_the_model_drops_the_old_models_options(capsys, tmp_path):
    config_file = tmp_path / "run.json"
    config_file.write_text(TrainConfig.from_dict({"model": {"options": {"width": 0.5}}}).to_json())
    cfg = printed_config(capsys, "--config", str(config_file), "--model", "lenet")
    assert (cfg.model.name, cfg.model.options) == ("lenet", {})


def test_augment_file_takes_a_saved_pipeline(capsys, tmp_path):
    saved = tmp_path / "pipeline.json"
    saved.write_text(json.dumps({"steps": [{"op": "hflip", "params": {"p": 0.3}}], "seed": 5}))
    cfg = printed_config(capsys, "--augment-file", str(saved))
    assert [(s["op"], s["params"]["p"]) for s in cfg.augment.train] == [("hflip", 0.3)]


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--set", "optim.lrr=1"], "unknown key 'optim.lrr'"),
        (["--set", "optim.lr"], "--set expects KEY=VALUE"),
        (["--lr", "-1"], "optim.lr must be in (0, 1_000_000]"),
        (["--augment", '[{"op": "twirl"}]'], "augment:"),
        (["--config", "/no/such/file.json"], "No such file"),
    ],
)
def test_bad_arguments_exit_2_with_the_message(capsys, argv, message):
    assert main(argv) == EXIT_USAGE
    assert message in capsys.readouterr().err
    assert store.list_runs().empty  # nothing was recorded


def test_a_failing_run_exits_1_with_its_message_and_is_recorded(capsys):
    assert main(["--dataset", "folder:/no/such/folder", "--quiet"]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "/no/such/folder" in err
    runs = store.list_runs()
    assert list(runs.status) == ["failed"] and "/no/such/folder" in runs.message[0]


def test_run_id_refuses_a_run_that_already_ended(capsys):
    run_id = store.create_run(TrainConfig())
    store.request_stop(run_id)
    assert main(["--run-id", run_id]) == EXIT_USAGE
    assert "is stopped" in capsys.readouterr().err


def _other_value(key, p):
    """A valid value for `key` other than its default, as the command line writes it."""
    special = {"data.dataset": "digits", "data.variant": "left", "model.init_from_run": "20250101-000000-abcdef",
               "tricks.teacher_run_id": "20250101-000000-abcdef", "run.device": "cpu", "schedule.warmup": 1.0,
               "optim.freeze_body_epochs": 1, "schedule.milestones": [0.25, 0.5], "data.image_size": 24}
    if key in special:
        return special[key]
    if p.kind == "bool":
        return not p.default
    if p.kind == "choice":
        return next(c for c in p.choices if c != p.default)
    value = (p.default or p.low or 0) + (p.step or 1)
    if p.kind == "int":
        value = int(value)
    if not p.in_range(value) or value == p.default:
        value = type(p.default)((p.low + p.default) / 2) if p.default not in (None, p.low) else p.high
    return value


def test_every_config_field_has_a_flag_that_sets_it(capsys):
    from core.training.config import config_params, flatten

    params = {k: p for k, p in config_params().items() if p.kind != "object"}
    assert len(params) >= 50
    for key, p in params.items():
        value = _other_value(key, p)
        text = ",".join(map(str, value)) if isinstance(value, list) else str(value).lower() if isinstance(value, bool) else str(value)
        cfg = printed_config(capsys, f"--{key}", text)
        got = flatten(cfg)[key]
        assert got == (tuple(value) if isinstance(value, list) else value) or list(got) == value, (key, got, value)
        assert got != p.default, key
    # a short flag is the same field; an optional field can be set back to None
    assert printed_config(capsys, "--lr", "0.3").optim.lr == printed_config(capsys, "--optim.lr", "0.3").optim.lr == 0.3
    assert printed_config(capsys, "--subset", "0.5", "--data.subset", "null").data.subset is None


def test_help_shows_each_fields_declared_range_and_default(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--lr X, --optim.lr X" in out
    assert "SGD momentum; 0.9 is usual. Range: in [0, 1). Default: 0.9." in out
