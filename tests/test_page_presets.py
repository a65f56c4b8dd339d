"""The Train page's presets panel: each preset's plan on each source, blocked presets, seeds, launching."""

import pytest
from streamlit.testing.v1 import AppTest
from test_sources import class_folders_zip, write_cifar_batches

from conftest import occupy_the_only_slot, open_train_page, progress_text, queue_table, run
from core.data.sources import CIFAR10_CLASSES, register
from core.data.uploads import save_upload
from core.runs import store
from core.runs.presets import PRESETS

pytestmark = pytest.mark.usefixtures("one_torch_thread", "no_runs_left_behind")


def train_page() -> AppTest:
    return open_train_page()


def show(app: AppTest, name: str) -> AppTest:
    app.selectbox(key="tr_preset").set_value(name)
    return run(app)


def texts(app: AppTest) -> str:
    return " ".join(e.value for e in [*app.info, *app.warning])


def launch_button(app: AppTest):
    return next(b for b in app.button if b.key == "tr-launch-preset")


def add_source(kind: str, auglab_home) -> str:
    """Give this machine one source of each kind the presets ask for; returns the words the plan uses."""
    if kind == "upload":
        save_upload("mini-cifar.zip", class_folders_zip(CIFAR10_CLASSES))  # recognised as CIFAR-10
        photos = save_upload("flowers.zip", class_folders_zip(["daisy", "rose", "tulip"], per_class=4, size=48))
        register("photos", photos.dataset)
        return "your upload mini-cifar.zip"
    if kind == "torchvision":
        write_cifar_batches(auglab_home / "datasets")
        return "torchvision files"
    return ""


@pytest.mark.parametrize("source", ["nothing", "upload", "torchvision"])
def test_each_presets_plan_on_each_source(source, auglab_home):
    said = add_source(source, auglab_home)
    at = train_page()
    for name, preset in PRESETS.items():
        show(at, name)
        shown = texts(at)
        button = launch_button(at)
        if preset.needs == "cifar10" and source != "nothing":
            assert f"Data: CIFAR-10 from {said}" in shown, name
            assert "classroom budget found by measurement" in shown and not button.disabled
            assert f"Measured over 3 seeds: {preset.measured}" in shown
        elif preset.needs == "photos" and source == "upload":
            assert "Data: Photos (a few classes) from your upload flowers.zip" in shown and not button.disabled
        elif preset.needs == "mnist":
            assert "embedded scikit-learn digits" in shown and not button.disabled
        elif preset.needs == "shapes" or preset.shapes is not None:
            assert not button.disabled
            if preset.needs != "shapes":
                assert "generated shapes" in shown and "is not on this machine" in shown
        else:  # not on the shapes: what it needs and how to get it, and no launch
            assert button.disabled, name
            assert "is not run on the generated shapes" in shown and "not on this machine" in shown


def test_a_blocked_preset_says_how_to_get_its_data_and_cannot_launch():
    at = show(train_page(), "mixup")
    assert any("This experiment needs CIFAR-10" in w.value and "upload a zip of class folders" in w.value for w in at.warning)
    assert launch_button(at).disabled
    assert at.dataframe == [] or all("run" not in d.value for d in at.dataframe)


def test_the_flip_preset_on_the_shapes_launches_its_runs_and_opens_the_comparison():
    occupy_the_only_slot()
    at = show(train_page(), "flip")
    launch_button(at).click()
    run(at)
    ids = at.session_state["compare_runs"]
    assert at.query_params["runs"] == ",".join(ids)
    names = [store.get_run(i).name for i in ids]
    assert names == ["Flip augmentation vs none · no augmentation", "Flip augmentation vs none · horizontal flip"]
    assert all(store.get_run(i).train_config().data.variant == "left" for i in ids)


def test_three_seeds_launch_a_seed_group_per_run(auglab_home):
    add_source("upload", auglab_home)
    occupy_the_only_slot()
    at = show(train_page(), "cutmix")
    at.number_input(key="tr_preset_seeds").set_value(3)
    run(at)
    assert launch_button(at).label == "Launch these 6 runs and compare them"
    assert at.dataframe[0].value["seeds"].tolist() == [3, 3]
    launch_button(at).click()
    run(at)
    records = [store.get_run(i) for i in at.session_state["compare_runs"]]
    assert [r.train_config().run.seed for r in records] == [0, 1, 2, 0, 1, 2]
    assert [r.train_config().tricks.cutmix_alpha for r in records] == [0.0] * 3 + [1.0] * 3
    assert records[0].name == "CutMix vs baseline · baseline (flips + crops) · seed 0"


def test_a_preset_runs_on_a_dataset_the_user_picks(auglab_home):
    upload = save_upload("stripes.zip", class_folders_zip(["a", "b"], per_class=4))
    at = show(train_page(), "mixup")
    assert launch_button(at).disabled  # no CIFAR-10 here
    at.selectbox(key="tr_preset_dataset").set_value(upload.dataset)  # listed as "Upload: stripes.zip ..."
    run(at)
    assert not launch_button(at).disabled
    assert any("On your choice of dataset, your upload stripes.zip" in i.value for i in at.info)


def test_the_fine_tuning_preset_pretrains_first_and_its_fine_tuning_run_waits_for_it():
    occupy_the_only_slot()
    at = show(train_page(), "finetune")
    table = at.dataframe[0].value
    assert list(table["run"]) == ["pretraining on all the shapes", "from scratch", "fine-tuned, head lr x10"]
    assert "model.init_from_run = <the pretraining run>" in table["differs from the first run in"].iloc[2]
    launch_button(at).click()
    run(at)
    scratch, tuned = at.session_state["compare_runs"]  # the comparison shows the compared runs only
    runs = store.list_runs()
    pretrain = runs[runs["name"].str.endswith("pretraining on all the shapes")]["id"].item()
    assert store.get_run(tuned).train_config().model.init_from_run == pretrain
    assert store.get_run(scratch).train_config().model.init_from_run is None
    assert store.waiting_for(tuned) == [pretrain]
    # the fine-tuning run says what it waits for, in the queue and on its own
    page = train_page()
    page.query_params["run"] = tuned
    run(page)
    queue = queue_table(page)
    assert list(queue["status"]) == ["running", "queued #1", "queued #2", "queued #3 (waits for a run it needs)"]
    assert progress_text(page).startswith("Waiting for Fine-tuning vs from scratch") and "pretraining on all the shapes" in progress_text(page)
