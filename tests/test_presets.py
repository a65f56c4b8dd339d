"""Presets: real data first, the course's recipe on a GPU, a measured budget on a CPU, shapes only
where they show the lesson, seeds for a verdict."""
import pytest

from core.data import sources
from core.data.sources import Resolved
from core.runs import runner
from core.runs.compare import seed_group
from core.runs.presets import PRESETS, PRETRAINED, budgets, contrasts, launch_plan, plan_preset
from core.training.config import TrainConfig, apply_overrides, diff

# What a machine with every kind of dataset would find: torchvision's files, and an uploaded photo set.
FOUND = {"cifar10": "cifar10", "mnist": "mnist", "fashion_mnist": "fashion_mnist", "photos": "zip:/data/flowers5.zip"}


def everything(kind: str) -> Resolved | None:
    return Resolved(kind, FOUND[kind], "torchvision files" if kind != "photos" else "your upload flowers5.zip")


def nothing(kind: str) -> Resolved | None:
    return None


def declared(name: str) -> list[TrainConfig]:
    """The configs exactly as declared: the course's recipe, on the dataset `everything` finds."""
    preset = PRESETS[name]
    configs = [apply_overrides(TrainConfig(), {**preset.course, **overrides}) for _, overrides in preset.runs]
    if preset.needs in FOUND:
        configs = [apply_overrides(cfg, {"data.dataset": FOUND[preset.needs]}) for cfg in configs]
    return configs


@pytest.fixture(autouse=True)
def sizes(monkeypatch):
    """Training-set sizes without files: the torchvision sets' own, 3,453 photos in the upload."""
    real = sources.train_size

    def train_size(dataset, *, subset=None, val_ratio=0.2):
        n = 3453 if dataset == FOUND["photos"] else real(dataset, val_ratio=val_ratio)
        return max(1, round(n * subset)) if (n and subset) else n

    monkeypatch.setattr(sources, "train_size", train_size)


@pytest.mark.parametrize("name", list(PRESETS))
def test_on_a_gpu_with_the_data_a_preset_runs_the_course_recipe_unchanged(name):
    plan = plan_preset(name, "cuda", resolve=everything)
    assert plan.budget == "course" and not plan.scaled_down and plan.runnable
    assert [cfg for _, cfg in plan.runs] == declared(name)
    assert any("course's own recipe, unchanged" in note for note in plan.notes)
    for _, cfg in plan.runs:  # the runs round-trip through JSON, as the store keeps them
        assert TrainConfig.from_json(cfg.to_json()) == cfg


def test_the_flip_preset_on_a_gpu_is_the_course_recipe():
    no_aug, flip = (cfg for _, cfg in plan_preset("flip", "cuda", resolve=everything).runs)
    for cfg in (no_aug, flip):
        assert (cfg.data.dataset, cfg.data.subset) == ("cifar10", None)
        assert (cfg.model.name, cfg.model.options["width"]) == ("resnet18", 64)
        assert (cfg.optim.name, cfg.optim.lr, cfg.run.batch_size, cfg.run.epochs) == ("adam", 1e-3, 256, 10)
        assert cfg.schedule.name == "constant"
    assert no_aug.augment.train == () and [s["op"] for s in flip.augment.train] == ["hflip"]


@pytest.mark.parametrize("name", list(PRESETS))
def test_the_runs_of_a_preset_differ_only_in_what_they_compare(name):
    preset = PRESETS[name]
    for device, resolve in (("cuda", everything), ("cpu", everything), ("cpu", nothing)):
        plan = plan_preset(name, device, resolve=resolve)
        if not plan.runnable:
            continue
        runs = [cfg for _, cfg in plan.runs]
        assert len(runs) >= 2
        for (_, overrides), cfg in zip(preset.runs[1:], runs[1:]):
            changed = diff(runs[0], cfg)
            assert changed, f"{name}: a run identical to the first compares nothing"
            compared = set(overrides) | set(preset.runs[0][1])
            assert {key for key in changed if not any(key.startswith(c) for c in compared)} == set()


@pytest.mark.parametrize("name", [n for n in PRESETS if PRESETS[n].needs != "shapes"])
def test_on_a_cpu_a_preset_trains_at_its_measured_budget_and_says_what_it_measured(name):
    preset = PRESETS[name]
    plan = plan_preset(name, "cpu", resolve=everything)
    assert plan.budget == "classroom" and plan.scaled_down
    note = next(n for n in plan.notes if n.startswith("No CUDA GPU here"))
    assert f"Measured over 3 seeds: {preset.measured}" in note
    if not preset.shown:
        assert "does not show" in note
    for _, cfg in plan.runs:
        assert cfg.data.dataset == FOUND[preset.needs]
        images = sources.train_size(cfg.data.dataset, subset=cfg.data.subset)
        assert images <= preset.cpu_images
    assert plan.total_runs == len(plan.runs)


def test_the_classroom_budget_for_cifar_is_a_small_subset_trained_long():
    plan = plan_preset("flip", "cpu", resolve=everything)
    for _, cfg in plan.runs:
        assert (cfg.data.subset, cfg.run.epochs, cfg.model.name) == (0.1, 30, "fastcnn")
    assert "5,000 training images instead of 50,000" in plan.notes[1] and "run.epochs 10 → 30" in plan.notes[1]


def test_a_dataset_the_user_uploaded_is_used_and_the_plan_says_which():
    upload = lambda kind: Resolved(kind, "zip:/u/3f2a.zip", "your upload cifar10.zip") if kind == "cifar10" else None  # noqa: E731
    plan = plan_preset("mixup", "cpu", resolve=upload)
    assert plan.dataset == "zip:/u/3f2a.zip" and plan.source == "your upload cifar10.zip"
    assert all(cfg.data.dataset == "zip:/u/3f2a.zip" for _, cfg in plan.runs)
    assert plan.notes[0] == "Data: CIFAR-10 from your upload cifar10.zip (zip:/u/3f2a.zip)."


def test_without_the_data_only_presets_that_show_the_lesson_on_shapes_fall_back_to_them():
    for name, preset in PRESETS.items():
        plan = plan_preset(name, "cpu", resolve=nothing)
        if preset.shapes is not None:
            assert plan.runnable and plan.dataset == "shapes"
            assert all(cfg.data.dataset == "shapes" for _, cfg in plan.runs)
        else:
            assert not plan.runnable and plan.runs == [] and plan.dataset is None
            assert sources.kind(preset.needs).how_to_get in plan.blocked
            assert "not run on the generated shapes" in plan.blocked
            with pytest.raises(ValueError, match="not on this machine"):
                launch_plan(plan)
    # the lessons the shapes invert are among the blocked ones
    blocked = {name for name in PRESETS if not plan_preset(name, "cpu", resolve=nothing).runnable}
    assert {"mixup", "cutout", "label_smoothing", "warmup_cosine", "finetune_imagenet"} <= blocked


def test_the_flip_preset_on_shapes_says_so_and_uses_the_left_variant():
    plan = plan_preset("flip", "cpu", resolve=nothing)
    assert all(cfg.data.variant == "left" for _, cfg in plan.runs)
    assert any("CIFAR-10 is not on this machine" in n and "generated shapes" in n for n in plan.notes)
    # with the real dataset there, the variant that only exists for shapes is not set
    assert all(cfg.data.variant is None for _, cfg in plan_preset("flip", "cpu", resolve=everything).runs)


def test_mnist_takes_the_embedded_digits_when_mnist_is_absent():
    plan = plan_preset("mnist_mlp_cnn", "cpu")  # the real resolver, in the tests' empty data folder
    assert plan.dataset == "digits" and "embedded scikit-learn digits" in plan.source
    assert all(cfg.data.image_size == 28 for _, cfg in plan.runs)  # LeNet-5's input, from 8x8
    assert [(cfg.model.name, cfg.data.permute_pixels) for _, cfg in plan.runs] == [
        ("mlp", False), ("lenet", False), ("mlp", True), ("lenet", True)]


def test_any_preset_runs_on_any_dataset_of_the_users():
    plan = plan_preset("cutout", "cpu", dataset="zip:/data/flowers5.zip", resolve=nothing)
    assert plan.runnable and all(cfg.data.dataset == "zip:/data/flowers5.zip" for _, cfg in plan.runs)
    assert "figures measured for this preset are for CIFAR-10" in plan.notes[0]


def test_seeds_queue_every_run_once_per_seed_named_as_a_seed_group(monkeypatch):
    launched = []
    monkeypatch.setattr(runner, "launch", lambda cfg, name: launched.append((name, cfg)) or f"id{len(launched)}")
    plan = plan_preset("flip", "cpu", seeds=3, resolve=everything)
    assert plan.total_runs == 6 and not any("One seed a run" in n for n in plan.notes)
    ids = launch_plan(plan)
    assert ids == [f"id{i}" for i in range(1, 7)]
    assert [cfg.run.seed for _, cfg in launched] == [0, 1, 2, 0, 1, 2]
    assert {seed_group(name) for name, _ in launched} == {name for name, _ in plan.runs}
    # within a group only the seed differs, between the groups only what the preset compares
    assert set(diff(launched[0][1], launched[1][1])) == {"run.seed"}
    assert set(diff(launched[0][1], launched[3][1])) == {"augment.train"}
    with pytest.raises(ValueError, match="seeds"):
        plan_preset("flip", "cpu", seeds=0, resolve=everything)


def test_one_seed_plans_say_a_verdict_needs_more():
    plan = plan_preset("flip", "cpu", resolve=everything)
    assert any("launch 3 seeds for a verdict" in n for n in plan.notes)


def test_budgets_the_course_on_a_gpu_and_the_longer_one_only_where_measured():
    assert budgets("flip", "cuda") == ["course", "classroom"]
    assert plan_preset("flip", "cuda", budget="classroom", resolve=everything).runs == plan_preset(
        "flip", "cpu", resolve=everything).runs
    for name, preset in PRESETS.items():
        if preset.longer is None:
            assert budgets(name, "cpu") == ["classroom"]
            with pytest.raises(ValueError, match="no 'longer' budget"):
                plan_preset(name, "cpu", budget="longer", resolve=everything)
        else:
            longer = plan_preset(name, "cpu", budget="longer", resolve=everything)
            classroom = plan_preset(name, "cpu", resolve=everything)
            assert longer.runs != classroom.runs and f"{preset.longer_minutes:g} minutes" in " ".join(longer.notes)


def test_the_course_comparisons_are_there():
    runs = {name: [cfg for _, cfg in plan_preset(name, "cuda", resolve=everything).runs] for name in PRESETS}
    assert [cfg.model.name for cfg in runs["lenet_vgg"]] == ["lenet", "vgg11"]
    assert [cfg.tricks.label_smoothing for cfg in runs["label_smoothing"]] == [0.0, 0.1]
    assert [cfg.tricks.mixup_alpha for cfg in runs["mixup"]] == [0.0, 0.2]
    assert [cfg.tricks.cutmix_alpha for cfg in runs["cutmix"]] == [0.0, 1.0]
    assert [cfg.tricks.ricap_beta for cfg in runs["ricap"]] == [0.0, 0.3]
    for name, op in (("cutout", "cutout"), ("random_erasing", "random_erasing"), ("autoaugment", "autoaugment")):
        base, trick = runs[name]
        assert [s["op"] for s in trick.augment.train] == [*(s["op"] for s in base.augment.train), op]
    step, warm = runs["warmup_cosine"]
    assert (step.schedule.name, warm.schedule.name, warm.schedule.warmup) == ("step", "cosine", 5.0)
    tuned, scratch = runs["finetune_imagenet"]
    assert tuned.model.options["pretrained"] and tuned.optim.head_lr_mult == 10
    assert not scratch.model.options["pretrained"] and scratch.optim.head_lr_mult == 1
    assert tuned.data.dataset == FOUND["photos"]
    scratch, tuned = runs["finetune"]
    assert (tuned.model.init_from_run, tuned.optim.head_lr_mult) == (PRETRAINED, 10)
    assert (scratch.model.init_from_run, scratch.optim.head_lr_mult) == (None, 1)


def test_every_contrast_names_two_runs_of_its_preset():
    for name, preset in PRESETS.items():
        names = {run_name for run_name, _ in preset.runs}
        for a, b, expect in contrasts(name):
            assert {a, b} <= names and a != b and expect in (-1, 0, 1)


def test_fine_tuning_from_imagenet_on_a_cpu_is_mobilenet_at_a_lower_input_size():
    tuned, scratch = (cfg for _, cfg in plan_preset("finetune_imagenet", "cpu", resolve=everything).runs)
    assert (tuned.model.name, tuned.data.image_size) == ("tv_mobilenet_v2", 128)
    assert diff(tuned, scratch).keys() <= {"model.options.pretrained", "optim.head_lr_mult", "optim.lr"}


@pytest.mark.parametrize("device", ["cuda", "cpu"])
def test_the_shapes_fine_tuning_preset_pretrains_on_all_the_shapes_first(device):
    plan = plan_preset("finetune", device, resolve=nothing)  # no real dataset, no ImageNet weights needed
    name, pretrain = plan.pretrain
    assert name.endswith("pretraining on all the shapes")
    assert (pretrain.data.dataset, pretrain.data.variant, pretrain.model.init_from_run) == ("shapes", None, None)
    for _, cfg in plan.runs:
        # the target: few images of a narrower training set, and the same model as the pretraining
        assert (cfg.data.variant, cfg.data.subset) == ("few_colours", 0.06)
        assert (cfg.model.name, cfg.model.options) == (pretrain.model.name, pretrain.model.options)
    if device == "cpu":
        assert (pretrain.data.subset, pretrain.run.epochs) == (0.5, 2)
        assert "The pretraining run is shortened too: 2,500 training images instead of 5,000; run.epochs 5 → 2." in plan.notes
    else:
        assert (pretrain.data.subset, pretrain.run.epochs) == (None, 5)


def test_launching_a_plan_queues_the_pretraining_first_and_points_the_fine_tuning_run_at_it(monkeypatch):
    launched = []
    monkeypatch.setattr(runner, "launch", lambda cfg, name: launched.append((name, cfg)) or f"id{len(launched)}")
    plan = plan_preset("finetune", "cpu", resolve=nothing)
    ids = launch_plan(plan)
    assert ids == ["id2", "id3"]  # the compared runs, not the pretraining run
    assert [name for name, _ in launched] == [plan.pretrain[0], plan.runs[0][0], plan.runs[1][0]]
    assert launched[0][1] == plan.pretrain[1]
    assert launched[1][1] == plan.runs[0][1]  # from scratch
    assert launched[2][1] == apply_overrides(plan.runs[1][1], {"model.init_from_run": "id1"})
    launched.clear()  # a preset without pretraining launches its runs as they are
    assert launch_plan(plan_preset("mixup", "cpu", resolve=everything)) == ["id1", "id2"]


def test_an_unknown_preset_is_named_in_the_error():
    with pytest.raises(KeyError, match="no_such_preset"):
        plan_preset("no_such_preset", "cpu")


def test_lenet_vgg_on_a_cpu_trains_a_narrower_vgg_and_says_so():
    plan = plan_preset("lenet_vgg", "cpu", resolve=everything)
    lenet, vgg = (cfg for _, cfg in plan.runs)
    assert vgg.model.options == {"batch_norm": True, "width": 16}
    assert lenet.model.options == {"activation": "relu"}  # no width option to give it
    assert "model.options.width 64 → 16" in plan.notes[1]
    on_shapes = dict(plan_preset("lenet_vgg", "cpu", resolve=nothing).runs)
    assert on_shapes["LeNet vs VGG · VGG-11"].model.options["width"] == 8


def test_a_plan_that_needs_imagenet_weights_says_how_to_get_them_when_they_are_missing(monkeypatch):
    from core.training import weights

    present = weights.availability("mobilenet_v2")
    monkeypatch.setattr(weights, "availability", lambda arch: present.__class__(
        arch, "MobileNetV2", False, present.path, weights.INSTALL_COMMAND))
    notes = " ".join(plan_preset("finetune_imagenet", "cpu", resolve=everything).notes)
    assert "MobileNetV2's ImageNet weights are not on this machine" in notes and weights.INSTALL_COMMAND in notes
    monkeypatch.setattr(weights, "availability", lambda arch: present.__class__(arch, "MobileNetV2", True, present.path, ""))
    assert "not on this machine" not in " ".join(plan_preset("finetune_imagenet", "cpu", resolve=everything).notes)
    assert "ImageNet weights" not in " ".join(plan_preset("flip", "cpu", resolve=everything).notes)
