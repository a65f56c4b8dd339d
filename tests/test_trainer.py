"""The training loop, its losses, the LR finder and predict, on a small slice of the shapes set."""

import dataclasses
import math

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
import torchvision

import core.data
from core import cli as train_api
from core import versions
from core.runs import store
from core.runs.predict import load_run_model, predict
from core.training import models
from core.training.batches import BatchMaker, load_data
from core.training.config import TrainConfig
from core.training.events import Eval, Failed, Finished, Started, Step
from core.training.finetune import build_model
from core.training.loop import fit, train_events
from core.training.losses import classification_loss, distillation_loss
from core.training.lr_finder import lr_find, suggest_lr
from core.training.optim import build_optimizer

TRAIN_IMAGES, TEST_IMAGES = 192, 100


@pytest.fixture(scope="module")
def small_shapes():
    """The real shapes generator, fewer images: 192 train (6 batches of 32) and 100 test."""
    train = core.data.generate_shapes(TRAIN_IMAGES, seed=1)
    test = core.data.generate_shapes(TEST_IMAGES, seed=2)
    x = train.x.float() / 255
    return core.data.DatasetBundle(
        name="shapes", train_x=train.x, train_y=train.y, test_x=test.x, test_y=test.y,
        classes=core.data.SHAPE_CLASSES,
        mean=tuple(x.mean(dim=(0, 2, 3)).tolist()), std=tuple(x.std(dim=(0, 2, 3)).tolist()),
    )


@pytest.fixture(autouse=True)
def small_data(monkeypatch, small_shapes):
    monkeypatch.setattr(core.data, "load_dataset", lambda name, **kwargs: small_shapes)


def tiny(**sections) -> TrainConfig:
    """A config that trains in about a second: a narrow FastCNN, 2 epochs of 6 steps."""
    tree = {
        "model": {"options": {"width": 0.25, "depth": 1}},
        "run": {"epochs": 2, "batch_size": 32, "threads": 1},
    }
    for section, values in sections.items():
        tree[section] = {**tree.get(section, {}), **values}
    return TrainConfig.from_dict(tree)


def kinds(events):
    return [type(e).__name__ for e in events]


# ---------------------------------------------------------------------------- the loop


def test_a_run_emits_started_steps_evals_and_finished(tmp_path):
    events = list(train_events(tiny(), run_id="r1", artefact_dir=tmp_path))
    # a sample of the first batch comes with the first step; the next only after BATCH_SAMPLE_EVERY_S
    assert kinds(events) == ["Started", "Step", "BatchSample"] + ["Step"] * 5 + ["Eval"] + ["Step"] * 6 + ["Eval", "Finished"]
    started, finished = events[0], events[-1]
    assert started.device == "cpu (1 thread)"
    assert (started.steps_per_epoch, started.total_steps, started.train_size) == (6, 12, TRAIN_IMAGES)
    assert started.n_params == models.count_parameters(build_model(tiny(), core.data.load_dataset("x"), torch.device("cpu")))
    steps = [e for e in events if isinstance(e, Step)]
    assert [s.step for s in steps] == list(range(1, 13))
    assert steps[-1].epoch == 2.0
    assert all(s.images_per_s > 0 and 0 <= s.acc <= 1 for s in steps)

    confusion = torch.tensor(finished.confusion)
    assert confusion.sum() == TEST_IMAGES
    assert finished.metrics["test_acc"] == pytest.approx(confusion.trace().item() / TEST_IMAGES)
    assert finished.metrics["test_acc"] == events[-2].test_acc
    for i, name in enumerate(finished.classes):
        row = confusion[i].sum().item()
        assert finished.per_class_acc[name] == pytest.approx(confusion[i, i].item() / row)
    wrong = finished.misclassified
    assert len(wrong) == TEST_IMAGES - confusion.trace().item()
    assert all(w["true"] != w["predicted"] for w in wrong)
    assert [w["confidence"] for w in wrong] == sorted((w["confidence"] for w in wrong), reverse=True)
    state = torch.load(finished.weights_path, weights_only=True)
    assert set(state) == set(build_model(tiny(), core.data.load_dataset("x"), torch.device("cpu")).state_dict())


def test_a_small_model_learns_the_shapes():
    cfg = tiny(model={"options": {"width": 0.5, "depth": 1}}, run={"epochs": 6}, optim={"lr": 0.2})
    final = fit(cfg)
    assert isinstance(final, Finished)
    assert final.metrics["train_acc"] > 0.6
    assert final.metrics["test_acc"] > 0.4  # chance is 0.1


def test_the_same_seed_repeats_a_cpu_run_exactly():
    cfg = tiny(
        augment={"train": [{"op": "hflip", "params": {"p": 0.5}}, {"op": "pad_crop", "params": {"padding": 4}}]},
        tricks={"mixup_alpha": 0.4, "mix_prob": 0.5},
    )

    def metrics_of(c):
        return [(e.loss, e.acc) if isinstance(e, Step) else (e.test_loss, e.test_acc)
                for e in train_events(c) if isinstance(e, (Step, Eval))]

    first = metrics_of(cfg)
    assert metrics_of(cfg) == first
    assert metrics_of(dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, seed=1))) != first


def test_a_nan_loss_fails_the_run_with_a_hint_about_the_learning_rate():
    events = list(train_events(tiny(optim={"lr": 1e6}, schedule={"name": "constant"})))
    failed = events[-1]
    assert isinstance(failed, Failed)
    assert failed.message.startswith("loss became NaN at step ")
    assert "the learning rate 1e+06 is probably too high" in failed.message
    assert failed.step == int(failed.message.split("step ")[1].split(":")[0])
    assert not any(isinstance(e, (Eval, Finished)) for e in events)


def test_a_stop_request_is_honoured_at_the_next_step_boundary(tmp_path):
    events = []
    stopped_after = 3

    def should_stop():
        return sum(isinstance(e, Step) for e in events) >= stopped_after

    for event in train_events(tiny(), should_stop=should_stop, artefact_dir=tmp_path):
        events.append(event)
    assert kinds(events) == ["Started", "Step", "BatchSample"] + ["Step"] * (stopped_after - 1) + ["Stopped"]
    assert events[-1].step == stopped_after and events[-1].epoch == pytest.approx(0.5)
    assert (tmp_path / "weights.pt").exists()


def test_setup_errors_become_a_failed_event_with_the_users_message(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    final = fit(tiny(run={"device": "cuda:1"}))
    assert isinstance(final, Failed) and "no CUDA GPU" in final.message
    final = fit(tiny(augment={"train": [{"op": "random_resized_crop", "params": {"size": 16}}]}))
    assert isinstance(final, Failed) and "set crop sizes" in final.message


# ---------------------------------------------------------------------------- store-backed runs


def test_run_records_everything_in_the_store(capsys):
    run_id = train_api.run(tiny(), "tiny", progress=True)
    assert "finished: test acc" in capsys.readouterr().out
    record = store.get_run(run_id)
    assert (record.status, record.name, record.device) == ("finished", "tiny", "cpu (1 thread)")
    assert record.train_config() == tiny()
    epochs = store.metrics(run_id, "epoch")
    assert list(epochs.step) == [6, 12] and epochs.test_acc.notna().all()
    steps = store.metrics(run_id, "step")
    assert list(steps.step) == list(range(1, 13)) and steps.lr.notna().all()
    assert record.summary["final"]["test_acc"] == epochs.test_acc.iloc[-1]
    assert record.summary["data"]["classes"] == list(core.data.SHAPE_CLASSES)
    assert (record.folder / record.summary["weights"]).exists()
    recorded = record.summary["versions"]
    assert (recorded["augmentation_lab"], recorded["torch"], recorded["torchvision"]) == (
        core.__version__, torch.__version__, torchvision.__version__)
    assert versions.describe(recorded).startswith(f"Trained with Augmentation Lab {core.__version__}")


def test_the_commit_is_recorded_inside_a_git_checkout_and_none_outside(monkeypatch, tmp_path):
    versions.commit.cache_clear()
    monkeypatch.setattr(versions, "ROOT", tmp_path)  # not a git checkout
    assert versions.commit() is None and versions.versions()["commit"] is None
    assert "commit" not in versions.describe(versions.versions())
    versions.commit.cache_clear()
    assert versions.describe({}).startswith("Versions: not recorded")


def test_a_stop_requested_in_the_store_ends_the_run_as_stopped_with_its_metrics():
    def stop_after_two_steps(event):
        if isinstance(event, Step) and event.step == 2:
            store.request_stop(event_run_id[0])

    def remember_id(event):
        if isinstance(event, Started):
            event_run_id.append(event.run_id)

    event_run_id = []
    run_id = train_api.run(tiny(), sinks=[remember_id, stop_after_two_steps])
    record = store.get_run(run_id)
    assert record.status == "stopped" and record.stop_requested
    assert list(store.metrics(run_id, "step").step) == [1, 2]  # checked before step 3 began


def test_a_diverging_run_is_recorded_as_failed_with_the_message():
    run_id = train_api.run(tiny(optim={"lr": 1e6}))
    record = store.get_run(run_id)
    assert record.status == "failed"
    assert "loss became NaN" in record.message and "probably too high" in record.message


def test_predict_rebuilds_the_model_from_the_store(small_shapes):
    run_id = train_api.run(tiny())
    record = store.get_run(run_id)
    image = small_shapes.test_x[0]
    top = predict(run_id, image, k=3)
    assert len(top) == 3 and all(name in core.data.SHAPE_CLASSES for name, _ in top)
    probs = [p for _, p in top]
    assert probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-6
    # It agrees with the evaluation that produced the stored confusion matrix.
    batch = predict(run_id, small_shapes.test_x, k=1)
    predicted = torch.tensor([core.data.SHAPE_CLASSES.index(b[0][0]) for b in batch])
    for wrong in record.summary["misclassified"]:
        assert predicted[wrong["index"]] == wrong["predicted"]
    assert (predicted == small_shapes.test_y).float().mean().item() == pytest.approx(record.summary["final"]["test_acc"])
    # Gray and differently sized images are brought to what the model was trained on.
    gray = small_shapes.test_x[:2, :1]
    assert len(predict(run_id, F.interpolate(gray.float() / 255, size=48), k=2)) == 2
    with pytest.raises(ValueError, match="no saved weights"):
        predict(store.create_run(tiny()), image)


# ---------------------------------------------------------------------------- losses


def test_soft_targets_with_label_smoothing_match_the_formula():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(8, 5, generator=g)
    soft = torch.rand(8, 5, generator=g)
    soft = soft / soft.sum(1, keepdim=True)  # mixed targets, rows sum to one
    eps, k = 0.1, 5
    expected = -(((1 - eps) * soft + eps / k) * logits.log_softmax(1)).sum(1).mean()
    assert classification_loss(logits, soft, eps).item() == pytest.approx(expected.item(), rel=1e-6)
    hard = torch.randint(0, 5, (8,), generator=g)
    expected_hard = -(((1 - eps) * F.one_hot(hard, 5) + eps / k) * logits.log_softmax(1)).sum(1).mean()
    assert classification_loss(logits, hard, eps).item() == pytest.approx(expected_hard.item(), rel=1e-6)


def test_distillation_loss_matches_hinton_et_al():
    g = torch.Generator().manual_seed(1)
    student, teacher = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    y = torch.randint(0, 4, (6,), generator=g)
    t, alpha = 3.0, 0.7
    p_teacher = (teacher / t).softmax(1)
    kl = (p_teacher * (p_teacher.log() - (student / t).log_softmax(1))).sum(1).mean()
    ce = -student.log_softmax(1)[torch.arange(6), y].mean()
    expected = alpha * t * t * kl + (1 - alpha) * ce
    assert distillation_loss(student, teacher, y, t, alpha).item() == pytest.approx(expected.item(), rel=1e-6)
    assert distillation_loss(student, teacher, y, t, 0.0).item() == pytest.approx(ce.item(), rel=1e-6)


def test_distillation_from_a_stored_teacher():
    teacher_id = train_api.run(tiny(), "teacher")
    student = tiny(tricks={"teacher_run_id": teacher_id, "distill_temperature": 2.0, "distill_alpha": 0.5})
    assert isinstance(fit(student), Finished)
    teacher = load_run_model(teacher_id)
    x = core.data.load_dataset("x").test_x[:4]
    assert teacher.logits(x).shape == (4, 10)
    missing = fit(tiny(tricks={"teacher_run_id": store.create_run(tiny())}))
    assert isinstance(missing, Failed) and "no saved weights" in missing.message


# ---------------------------------------------------------------------------- batches


def test_batches_are_augmented_mixed_and_normalised():
    device = torch.device("cpu")
    plain_cfg = tiny()
    data = load_data(plain_cfg, device)
    idx = torch.arange(8)
    x, targets, labels, images = BatchMaker(plain_cfg, data)(idx)
    raw = data.train_x[:8].float() / 255
    assert torch.equal(images, raw) and torch.equal(targets, data.train_y[:8])
    assert torch.allclose(x, (raw - data.mean) / data.std)

    flip_cfg = tiny(augment={"train": [{"op": "hflip", "params": {"p": 1.0}}]})
    _, _, _, flipped = BatchMaker(flip_cfg, data)(idx)
    assert torch.equal(flipped, raw.flip(-1))

    mix_cfg = tiny(tricks={"cutmix_alpha": 1.0})
    _, soft, dominant, _ = BatchMaker(mix_cfg, data)(idx)
    assert soft.shape == (8, 10) and torch.allclose(soft.sum(1), torch.ones(8))
    assert torch.equal(dominant, soft.argmax(1))

    never = tiny(tricks={"mixup_alpha": 1.0, "mix_prob": 0.0})
    assert BatchMaker(never, data)(idx)[1].dtype == torch.int64


def test_a_batch_sample_is_what_the_model_received_with_its_smoothed_targets_and_draws():
    import numpy as np

    cfg = tiny(augment={"train": [{"op": "hflip", "params": {"p": 1.0}}]},
               tricks={"mixup_alpha": 0.4, "label_smoothing": 0.1})
    data = load_data(cfg, torch.device("cpu"))
    maker = BatchMaker(cfg, data)
    assert maker.sample(1, 0.1) is None  # nothing kept yet
    x, targets, labels, images = maker(torch.arange(16), keep=4)
    sample = maker.sample(7, 0.5, label_smoothing=0.1)
    assert (sample.step, sample.epoch) == (7, 0.5)
    assert sample.images.dtype == np.uint8 and sample.images.shape == (4, *images.shape[1:])
    np.testing.assert_array_equal(sample.images, (images[:4] * 255).round().to(torch.uint8).numpy())
    smoothed = targets[:4] * 0.9 + 0.1 / 10  # the loss's target with label smoothing
    for i, shown in enumerate(sample.targets):
        order = smoothed[i].argsort(descending=True)
        assert [c for c, unused in shown] == order[:len(shown)].tolist()
        assert [w for unused, w in shown] == pytest.approx(smoothed[i][order[:len(shown)]].tolist(), abs=1e-4)
        assert 1 <= len(shown) <= 3
    classes = data.bundle.classes
    for i, lines in enumerate(sample.drawn):
        assert lines[0].startswith("Horizontal flip")
        assert lines[-1].startswith("Mixup: λ = ") and classes[int(data.train_y[i])] in lines[-1]
    assert maker.sample(8, 0.6) is None  # a sample is handed out once


def test_batch_samples_come_at_the_first_step_then_every_so_often(tmp_path):
    every_step = [e for e in train_events(tiny(), artefact_dir=tmp_path, sample_every_s=0.0)]
    samples = [e for e in every_step if type(e).__name__ == "BatchSample"]
    assert [s.step for s in samples] == list(range(1, 13))
    assert all(s.images.shape[0] == 8 and s.drawn == [[]] * 8 for s in samples)  # no pipeline: nothing drawn
    assert all(s.targets[i][0][1] == 1.0 for s in samples for i in range(8))  # one-hot: no smoothing, no mixing
    once = [e for e in train_events(tiny(), artefact_dir=tmp_path, sample_every_s=3600.0)]
    assert [e.step for e in once if type(e).__name__ == "BatchSample"] == [1]


def test_random_erasing_mean_fills_with_the_training_images_mean_colour(monkeypatch, small_shapes):
    mean = (0.11, 0.22, 0.33)  # not ImageNet's (0.485, 0.456, 0.406)
    monkeypatch.setattr(core.data, "load_dataset", lambda name, **kw: dataclasses.replace(small_shapes, mean=mean))
    cfg = tiny(augment={"train": [{"op": "random_erasing", "params": {"p": 1.0, "value": "mean"}}]})
    data = load_data(cfg, torch.device("cpu"))
    _, _, _, images = BatchMaker(cfg, data)(torch.arange(8))
    erased = (images - torch.tensor(mean).view(1, 3, 1, 1)).abs().amax(dim=1) < 1e-6
    assert erased.flatten(1).any(dim=1).all(), "every image has a rectangle of the dataset's mean colour"


def test_xavier_init_and_the_head_multiplier_reach_the_model_and_optimiser():
    data = core.data.load_dataset("x")
    xavier = build_model(tiny(model={"init": "xavier"}), data, torch.device("cpu"))
    conv = xavier.features[0]
    fan_in, fan_out = conv.weight[0].numel(), conv.weight.shape[0] * conv.weight[0, 0].numel()
    bound = math.sqrt(6 / (fan_in + fan_out))
    assert conv.weight.abs().max() <= bound and conv.weight.abs().max() > 0.9 * bound
    cfg = tiny(optim={"head_lr_mult": 10.0, "lr": 0.02})
    opt = build_optimizer(build_model(cfg, data, torch.device("cpu")), cfg)
    assert [(g["name"], g["lr_mult"], g["lr"]) for g in opt.param_groups] == [("body", 1.0, 0.02), ("head", 10.0, 0.2)]


def test_a_frozen_body_stays_put_while_the_head_learns(tmp_path):
    cfg = tiny(optim={"freeze_body_epochs": 1}, run={"epochs": 1})
    data = core.data.load_dataset("x")
    initial = build_model(cfg, data, torch.device("cpu")).state_dict()
    final = fit(cfg, artefact_dir=tmp_path)
    trained = torch.load(final.weights_path, weights_only=True)
    model = build_model(cfg, data, torch.device("cpu"))
    params = dict(model.named_parameters())
    head = {name for name, p in params.items() if any(p is q for q in models.param_groups(model)["head"])}
    assert head and all(torch.equal(trained[n], initial[n]) for n in params if n not in head)
    assert all(not torch.equal(trained[n], initial[n]) for n in head)


@pytest.mark.parametrize("option", [{"channels_last": True}, {"amp": "bf16"}])
def test_speed_options_still_train(option):
    final = fit(tiny(run={"epochs": 1, **option}))
    assert isinstance(final, Finished), final


def test_muon_trains_the_filters_and_holds_their_norm(tmp_path):
    cfg = tiny(optim={"lr": 0.2, "muon_lr": 0.1, "bias_lr_mult": 64.0})
    final = fit(cfg, artefact_dir=tmp_path)
    assert isinstance(final, Finished), final
    trained = torch.load(final.weights_path, weights_only=True)
    filters = [name for name, value in trained.items() if name.startswith("features.") and value.dim() == 4]
    assert filters
    # Muon scales each filter bank back to norm sqrt(out) before its step, and the last steps are
    # small (SGD leaves them at 0.82-1.003 of that here)
    for name in filters:
        assert float(trained[name].norm()) / math.sqrt(trained[name].shape[0]) == pytest.approx(1.0, abs=0.01), name
    first = next(e for e in train_events(cfg) if isinstance(e, Eval))
    assert math.isfinite(first.train_loss)


@pytest.mark.parametrize("native", [True, False])
def test_bf16_on_a_cpu_is_used_only_where_the_cpu_computes_it_natively(monkeypatch, native):
    import core.training.device

    monkeypatch.setattr(core.training.device, "cpu_has_fast_bf16", lambda: native)
    cpu = torch.device("cpu")
    assert core.training.device.autocast_dtype("bf16", cpu) == (torch.bfloat16 if native else None)
    run = train_events(tiny(run={"epochs": 1, "amp": "bf16"}))
    started = next(e for e in run if isinstance(e, Started))
    run.close()
    assert started.device.endswith("bfloat16 autocast" if native else core.training.device.BF16_EMULATED)


# ---------------------------------------------------------------------------- LR finder


def test_lr_finder_ramps_exponentially_and_stops_when_the_loss_explodes():
    df = lr_find(tiny(), start_lr=1e-4, end_lr=1e4, num_steps=40)
    assert list(df.columns[:3]) == ["lr", "loss", "raw_loss"]
    ratios = (df.lr.iloc[1:].to_numpy() / df.lr.iloc[:-1].to_numpy())
    assert ratios == pytest.approx([(1e4 / 1e-4) ** (1 / 39)] * len(ratios))
    assert len(df) < 40  # stopped early: an lr of 1e4 makes the loss explode
    suggestion = df.attrs["suggested_lr"]
    assert df.lr.min() <= suggestion <= df.lr.max()


def test_lr_finder_takes_the_training_loops_own_step(monkeypatch):
    """lr_find trains through Setup.step, the step train_events takes: same loss (label smoothing,
    distillation), same loss scaling, so what it measures is what a run does."""
    from core.training import loop

    seen = []
    real_step = loop.Setup.step

    def spy(self, idx, lr, keep=0):
        seen.append((len(idx), lr, self.cfg.tricks.label_smoothing))
        return real_step(self, idx, lr, keep)

    monkeypatch.setattr(loop.Setup, "step", spy)
    df = lr_find(tiny(tricks={"label_smoothing": 0.1}), start_lr=1e-4, end_lr=1e-2, num_steps=5)
    assert [lr for _, lr, _ in seen] == pytest.approx(df["lr"].tolist()) and len(seen) == 5
    assert {(n, eps) for n, _, eps in seen} == {(32, 0.1)}
    seen.clear()
    fit(tiny(run={"epochs": 1}))
    assert len(seen) == 192 // 32  # and the loop itself steps through it too


def test_steps_per_epoch_drop_the_ragged_batch_unless_the_set_is_smaller_than_one():
    from core.training.batches import steps_per_epoch

    assert (steps_per_epoch(192, 32), steps_per_epoch(200, 32), steps_per_epoch(10, 32)) == (6, 6, 1)
    started = next(e for e in train_events(tiny()) if isinstance(e, Started))
    assert started.steps_per_epoch == steps_per_epoch(started.train_size, 32)


def test_the_planned_device_is_described_as_the_run_will_describe_it():
    from core.training.config import ConfigError
    from core.training.device import planned_device

    device, text = planned_device("cpu", 1, "off")
    assert device.type == "cpu" and text == "cpu (1 thread)"
    started = next(e for e in train_events(tiny(run={"threads": 1, "amp": "off"})) if isinstance(e, Started))
    assert started.device == text
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            planned_device("cuda", None, "off")


def test_suggestions_follow_the_curve():
    lrs = [10 ** (i / 10 - 4) for i in range(41)]
    # A loss that is flat, falls steepest around 1e-2, bottoms out at 1e-1 and then rises.
    loss = [2 - math.tanh((math.log10(lr) + 2) * 2) if lr <= 1e-1 else 1.1 + (math.log10(lr) + 1) for lr in lrs]
    df = pd.DataFrame({"lr": lrs, "loss": loss})
    assert suggest_lr(df, "steepest") == pytest.approx(1e-2, rel=0.3)
    assert suggest_lr(df, "min/10") == pytest.approx(lrs[int(pd.Series(loss).idxmin())] / 10)


# ---------------------------------------------------------------------------- permuted pixels


def test_permuted_pixels_shuffle_train_and_test_alike_with_the_data_seeds_permutation(small_shapes):
    from core.data.permute import permute_pixels, pixel_permutation

    device = torch.device("cpu")
    plain = load_data(tiny(), device)
    permuted = load_data(tiny(data={"permute_pixels": True, "seed": 3}), device)
    order = pixel_permutation(32, 32, seed=3)
    assert plain.pixel_order is None and torch.equal(permuted.pixel_order, order)
    assert torch.equal(permuted.train_x, permute_pixels(small_shapes.train_x, order))
    assert torch.equal(permuted.test_x, permute_pixels(small_shapes.test_x, order))
    assert torch.equal(permuted.train_y, plain.train_y) and torch.equal(permuted.test_y, plain.test_y)
    assert torch.equal(permuted.mean, plain.mean) and torch.equal(permuted.std, plain.std)  # values moved, not changed
    again = load_data(tiny(data={"permute_pixels": True, "seed": 3}), device)
    assert torch.equal(again.train_x, permuted.train_x)
    other = load_data(tiny(data={"permute_pixels": True, "seed": 4}), device)
    assert not torch.equal(other.train_x, permuted.train_x)
    assert "pixels permuted" in permuted.bundle.note


def test_a_permuted_run_predicts_plain_pictures_through_its_permutation(small_shapes):
    run_id = train_api.run(tiny(data={"permute_pixels": True}))
    record = store.get_run(run_id)
    batch = predict(run_id, small_shapes.test_x, k=1)  # plain pictures, as a person would upload them
    predicted = torch.tensor([core.data.SHAPE_CLASSES.index(b[0][0]) for b in batch])
    accuracy = (predicted == small_shapes.test_y).float().mean().item()
    assert accuracy == pytest.approx(record.summary["final"]["test_acc"])
    for wrong in record.summary["misclassified"]:
        assert predicted[wrong["index"]] == wrong["predicted"]


def test_a_permuted_student_hands_its_teacher_the_pictures_in_order(monkeypatch, small_shapes):
    class SpyTeacher:
        """The stored teacher, remembering every batch of images it is shown."""

        def __init__(self, loaded):
            self.loaded, self.num_classes, self.in_channels = loaded, loaded.num_classes, loaded.in_channels
            self.seen = []

        def logits(self, images):
            self.seen.append(images)
            return self.loaded.logits(images)

    teacher_id = train_api.run(tiny(), "plain teacher")
    spy = SpyTeacher(load_run_model(teacher_id))
    monkeypatch.setattr("core.training.finetune.load_run_model", lambda run_id, device: spy)
    student = tiny(data={"permute_pixels": True}, tricks={"teacher_run_id": teacher_id}, run={"epochs": 1})
    assert isinstance(fit(student), Finished)
    # The teacher was trained on plain images: each one it was shown is a plain training image
    # (a permuted one matches none of them).
    plain = small_shapes.train_x.float() / 255
    shown = torch.cat(spy.seen)
    assert len(shown) == TRAIN_IMAGES
    assert all((plain == image).all(dim=(1, 2, 3)).any() for image in shown)


# ---------------------------------------------------------------------------- fine-tuning from a run


def five_classes(bundle):
    """The first five shapes only: a new task with another number of classes for the head."""
    keep_train, keep_test = bundle.train_y < 5, bundle.test_y < 5
    return dataclasses.replace(
        bundle, train_x=bundle.train_x[keep_train], train_y=bundle.train_y[keep_train],
        test_x=bundle.test_x[keep_test], test_y=bundle.test_y[keep_test], classes=bundle.classes[:5],
    )


def test_fine_tuning_starts_from_the_runs_body_with_a_new_head(monkeypatch, small_shapes):
    source_id = train_api.run(tiny(), "source")
    stored = torch.load(store.get_run(source_id).folder / "weights.pt", weights_only=True)
    target = five_classes(small_shapes)
    cfg = tiny(model={"init_from_run": source_id})
    model = build_model(cfg, target, torch.device("cpu"))
    state = model.state_dict()
    assert state["head.weight"].shape == (5, stored["head.weight"].shape[1])
    body = [k for k in state if not k.startswith("head.")]
    assert body and all(torch.equal(state[k], stored[k]) for k in body)
    # the head is the fresh one a run without init_from_run gets: same seed, same initial head
    fresh = build_model(tiny(), target, torch.device("cpu")).state_dict()
    assert torch.equal(state["head.weight"], fresh["head.weight"])
    assert not torch.equal(state[body[0]], fresh[body[0]])


def test_fine_tuning_with_a_frozen_body_and_a_faster_head(monkeypatch, small_shapes, tmp_path):
    source_id = train_api.run(tiny(), "source")
    stored = torch.load(store.get_run(source_id).folder / "weights.pt", weights_only=True)
    monkeypatch.setattr(core.data, "load_dataset", lambda name, **kwargs: five_classes(small_shapes))
    cfg = tiny(model={"init_from_run": source_id}, optim={"head_lr_mult": 10.0, "freeze_body_epochs": 1}, run={"epochs": 1})
    model = build_model(cfg, five_classes(small_shapes), torch.device("cpu"))
    groups = build_optimizer(model, cfg).param_groups
    assert [(g["name"], g["lr"]) for g in groups] == [("body", 0.05), ("head", 0.5)]
    final = fit(cfg, artefact_dir=tmp_path)
    assert isinstance(final, Finished) and final.classes == core.data.SHAPE_CLASSES[:5]
    trained = torch.load(final.weights_path, weights_only=True)
    params = {name for name, _ in model.named_parameters()}
    assert all(torch.equal(trained[n], stored[n]) for n in params if not n.startswith("head."))  # frozen
    assert not torch.equal(trained["head.weight"], model.state_dict()["head.weight"])  # the head learned


def test_fine_tuning_from_an_unusable_run_fails_with_the_reason():
    def failure(cfg):
        final = fit(cfg)
        assert isinstance(final, Failed)
        return final.message

    assert "model.init_from_run: there is no run 'nope'" in failure(tiny(model={"init_from_run": "nope"}))
    queued = store.create_run(tiny(), "not yet")
    assert f"run {queued} (not yet) is queued; only a finished run" in failure(tiny(model={"init_from_run": queued}))
    lenet = store.create_run(TrainConfig.from_dict({"model": {"name": "lenet"}}), "a lenet", status="running")
    store.set_status(lenet, "finished")
    assert "trained a lenet, not a fastcnn" in failure(tiny(model={"init_from_run": lenet}))
    narrow = train_api.run(tiny(), "narrow")
    wider = tiny(model={"init_from_run": narrow, "options": {"width": 0.5, "depth": 1}})
    message = failure(wider)
    assert f"run {narrow} (narrow) has another architecture" in message and "'width': 0.5" in message
