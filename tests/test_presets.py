"""Presets: every one builds valid configs, compares one thing, shrinks on a CPU and falls back to shapes."""
import pytest

from core import runner
from core.config import TrainConfig, apply_overrides, diff
from core.presets import PRESETS, PRETRAINED, TRAIN_SIZES, build_preset, launch_plan, plan_preset

ALL_DATASETS = ["shapes", "cifar10", "mnist", "fashion_mnist"]


def declared(name: str) -> list[TrainConfig]:
    """The configs exactly as declared: the course's scale."""
    preset = PRESETS[name]
    return [apply_overrides(TrainConfig(), {**preset.base, **overrides}) for _, overrides in preset.runs]


@pytest.mark.parametrize("name", list(PRESETS))
def test_on_a_gpu_with_the_data_a_preset_is_exactly_as_declared(name):
    plan = plan_preset(name, "cuda", ALL_DATASETS)
    assert [cfg for _, cfg in plan.runs] == declared(name)
    assert not plan.scaled_down and plan.notes == []
    assert build_preset(name, "cuda", ALL_DATASETS) == plan.runs
    # the runs round-trip through JSON, as the store keeps them
    for _, cfg in plan.runs:
        assert TrainConfig.from_json(cfg.to_json()) == cfg


@pytest.mark.parametrize("name", list(PRESETS))
def test_the_runs_of_a_preset_differ_only_in_what_they_compare(name):
    preset = PRESETS[name]
    for device, available in (("cuda", ALL_DATASETS), ("cpu", ["shapes"])):
        runs = [cfg for _, cfg in build_preset(name, device, available)]
        assert len(runs) >= 2
        for (_, overrides), cfg in zip(preset.runs[1:], runs[1:]):
            changed = diff(runs[0], cfg)
            assert changed, f"{name}: a run identical to the first compares nothing"
            compared = set(overrides) | set(preset.runs[0][1])
            assert {key for key in changed if not any(key.startswith(c) for c in compared)} == set()


@pytest.mark.parametrize("name", list(PRESETS))
def test_on_a_cpu_a_preset_scales_down_and_says_how(name):
    full = declared(name)
    plan = plan_preset(name, "cpu", ALL_DATASETS)
    assert plan.scaled_down
    assert any(note.startswith("No CUDA GPU here") for note in plan.notes)
    for big, (_, small) in zip(full, plan.runs):
        assert small.run.epochs < big.run.epochs
        images = round((small.data.subset or 1.0) * TRAIN_SIZES[small.data.dataset])
        assert images <= PRESETS[name].cpu_train_images
        # a narrower model where the architecture has a width
        if "width" in big.model.options:
            assert small.model.options["width"] < big.model.options["width"]
        # lengths in epochs shrink with the run, so the config stays valid and a warmup stays a warmup
        if big.schedule.warmup:
            assert small.schedule.warmup / small.run.epochs == pytest.approx(big.schedule.warmup / big.run.epochs, rel=0.01)


def test_a_missing_dataset_falls_back_to_shapes_and_says_so():
    plan = plan_preset("flip", "cpu", ["shapes"])
    assert plan.dataset == "shapes"
    assert all(cfg.data.dataset == "shapes" and cfg.data.variant == "left" for _, cfg in plan.runs)
    assert any("CIFAR-10" in note and "not on this machine" in note and "shapes" in note.lower() for note in plan.notes)
    # with the real dataset there, the variant that only exists for shapes is not set
    assert all(cfg.data.variant is None for _, cfg in build_preset("flip", "cpu", ALL_DATASETS))


def test_mnist_falls_back_to_fashion_mnist_before_shapes():
    assert plan_preset("mnist_mlp_cnn", "cpu", ["shapes", "fashion_mnist"]).dataset == "fashion_mnist"
    assert plan_preset("mnist_mlp_cnn", "cpu", ["shapes"]).dataset == "shapes"
    assert plan_preset("mnist_mlp_cnn", "cpu", ALL_DATASETS).dataset == "mnist"


def test_the_course_comparisons_are_there():
    runs = {name: [cfg for _, cfg in build_preset(name, "cuda", ALL_DATASETS)] for name in PRESETS}
    flip = runs["flip"]
    assert [len(cfg.augment.train) for cfg in flip] == [0, 1] and flip[1].augment.train[0]["op"] == "hflip"
    assert [cfg.model.name for cfg in runs["lenet_vgg"]] == ["lenet", "vgg11"]
    assert runs["lenet_vgg"][1].model.options["width"] == 64  # the real VGG-11 on a GPU
    mnist = runs["mnist_mlp_cnn"]
    assert [(cfg.model.name, cfg.data.permute_pixels) for cfg in mnist] == [
        ("mlp", False), ("lenet", False), ("mlp", True), ("lenet", True)]
    assert [cfg.tricks.label_smoothing for cfg in runs["label_smoothing"]] == [0.0, 0.1]
    assert [cfg.tricks.mixup_alpha for cfg in runs["mixup"]] == [0.0, 0.2]
    assert [step["op"] for step in runs["cutout"][1].augment.train][-1] == "cutout"
    step, warm = runs["warmup_cosine"]
    assert (step.schedule.name, warm.schedule.name, warm.schedule.warmup) == ("step", "cosine", 5.0)
    tuned, scratch = runs["finetune_imagenet"]
    assert tuned.model.options["pretrained"] and tuned.optim.head_lr_mult == 10
    assert not scratch.model.options["pretrained"] and scratch.optim.head_lr_mult == 1
    scratch, tuned = runs["finetune"]
    assert (tuned.model.init_from_run, tuned.optim.head_lr_mult) == (PRETRAINED, 10)
    assert (scratch.model.init_from_run, scratch.optim.head_lr_mult) == (None, 1)


@pytest.mark.parametrize("device", ["cuda", "cpu"])
def test_the_offline_fine_tuning_preset_pretrains_on_all_the_shapes_first(device):
    plan = plan_preset("finetune", device, ["shapes"])  # no torchvision dataset, no ImageNet weights needed
    name, pretrain = plan.pretrain
    assert name.endswith("pretraining on all the shapes")
    assert (pretrain.data.dataset, pretrain.data.variant, pretrain.model.init_from_run) == ("shapes", None, None)
    for _, cfg in plan.runs:
        # the target: few images of a narrower training set, and the same model as the pretraining
        assert (cfg.data.variant, cfg.data.subset) == ("few_colours", 0.06)
        assert (cfg.model.name, cfg.model.options) == (pretrain.model.name, pretrain.model.options)
        assert (pretrain.data.subset or 1.0) > cfg.data.subset
    if device == "cpu":
        assert (pretrain.data.subset, pretrain.run.epochs) == (0.5, 2)
        assert "The pretraining run is scaled down too: 2,500 training images instead of 5,000; run.epochs 5 → 2." in plan.notes
    else:
        assert (pretrain.data.subset, pretrain.run.epochs) == (None, 5)


def test_launching_a_plan_queues_the_pretraining_first_and_points_the_fine_tuning_run_at_it(monkeypatch):
    launched = []

    def launch(cfg, name):
        launched.append((name, cfg))
        return f"id{len(launched)}"

    monkeypatch.setattr(runner, "launch", launch)
    plan = plan_preset("finetune", "cpu", ["shapes"])
    ids = launch_plan(plan)
    assert ids == ["id2", "id3"]  # the compared runs, not the pretraining run
    assert [name for name, _ in launched] == [plan.pretrain[0], plan.runs[0][0], plan.runs[1][0]]
    assert launched[0][1] == plan.pretrain[1]
    assert launched[1][1] == plan.runs[0][1]  # from scratch
    assert launched[2][1].model.init_from_run == "id1"
    assert launched[2][1] == apply_overrides(plan.runs[1][1], {"model.init_from_run": "id1"})
    # a preset without pretraining launches its runs as they are
    launched.clear()
    assert launch_plan(plan_preset("mixup", "cpu", ["shapes"])) == ["id1", "id2"]


def test_an_unknown_preset_is_named_in_the_error():
    with pytest.raises(KeyError, match="no_such_preset"):
        plan_preset("no_such_preset", "cpu", ["shapes"])


def test_lenet_vgg_on_a_cpu_trains_a_narrow_vgg_and_says_so():
    plan = plan_preset("lenet_vgg", "cpu", ["shapes"])
    lenet, vgg = (cfg for _, cfg in plan.runs)
    assert vgg.model.options == {"batch_norm": True, "width": 8}
    assert lenet.model.options == {"activation": "relu"}  # no width option to give it
    assert (vgg.run.epochs, vgg.run.batch_size, vgg.optim.lr) == (3, 32, 0.02)
    assert "model.options.width 64 → 8" in plan.notes[-1]


def test_a_run_can_be_adjusted_for_the_shapes_and_the_plan_says_so():
    preset = PRESETS["cutout"]
    assert preset.run_on_fallback, "the Cutout preset adjusts its Cutout run on the shapes"
    run_name, changes = next(iter(preset.run_on_fallback.items()))
    on_shapes = dict((name.split(" · ", 1)[1], cfg) for name, cfg in build_preset("cutout", "cpu", ["shapes"]))
    on_cifar = dict((name.split(" · ", 1)[1], cfg) for name, cfg in build_preset("cutout", "cpu", ALL_DATASETS))
    assert on_shapes[run_name].augment == apply_overrides(on_cifar[run_name], changes).augment
    cutout = lambda cfg: next(step for step in cfg.augment.train if step["op"] == "cutout")  # noqa: E731
    assert cutout(on_shapes[run_name])["params"]["fill"] != cutout(on_cifar[run_name])["params"]["fill"]
    # the other run is untouched, and the plan names the change
    others = [name for name in on_shapes if name != run_name]
    assert all(on_shapes[name].augment == on_cifar[name].augment for name in others)
    note = " ".join(plan_preset("cutout", "cpu", ["shapes"]).notes)
    assert run_name in note and "augment.train" in note
