"""The Compare page exports the selected runs as one file and imports such a file, refusing a bad one."""
from __future__ import annotations

from conftest import ROOT, run
from streamlit.testing.v1 import AppTest
from test_compare import make_run

from core.paths import HOME_ENV
from core.runs import store, transfer


def compare_page() -> AppTest:
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    app.switch_page("pages/compare.py")
    return run(app)


def upload(app: AppTest, name: str, data: bytes) -> AppTest:
    app.file_uploader(key="compare_import").set_value((name, data, "application/zip"))
    return run(app)


def test_a_fresh_machine_imports_a_run_file_and_compares_its_runs(tmp_path, monkeypatch):
    a, b = make_run("baseline", test_acc=(0.5, 0.7)), make_run("cutout", test_acc=(0.55, 0.75))
    data = transfer.export_runs([a, b])
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "fresh"))
    app = compare_page()
    assert any("No runs yet" in i.value for i in app.info)  # nothing here, and yet the import is offered
    app = upload(app, "lesson.auglab.zip", data)
    assert [s.value for s in app.success] == ["Imported 2 runs from lesson.auglab.zip."]
    assert sorted(app.multiselect(key="compare_pick").value) == sorted([a, b])
    assert app.get("plotly_chart") and set(store.list_runs()["id"]) == {a, b}
    # the same file again: nothing added, nothing lost
    app = upload(app, "lesson.auglab.zip", data)
    assert any("were here already" in i.value for i in app.info) and len(store.list_runs()) == 2


def test_a_bad_run_file_is_refused_with_its_reason_and_changes_nothing():
    kept = make_run("kept")
    app = upload(compare_page(), "holiday.zip", b"PK\x03\x04 not a zip at all")
    (error,) = app.error
    assert "holiday.zip was not imported, and nothing changed" in error.value and "not a run file" in error.value
    assert list(store.list_runs()["id"]) == [kept]


def test_the_export_button_offers_the_selected_ended_runs_with_weights_when_asked():
    a, b = make_run("baseline"), make_run("mixup")
    app = compare_page()
    app.multiselect(key="compare_pick").set_value([a, b])
    app = run(app)
    (button,) = [d for d in app.get("download_button") if d.label == "Runs as a file"]
    assert "2 of 2 selected" in button.help and not button.proto.disabled
    app.toggle(key="compare_export_weights").set_value(True)
    app = run(app)
    (button,) = [d for d in app.get("download_button") if d.label == "Runs as a file"]
    assert ", weights" in button.help
    # a run still training is not offered (its file would miss the end)
    running = make_run("still going", status="running")
    app.multiselect(key="compare_pick").set_value([running])
    app = run(app)
    (button,) = [d for d in app.get("download_button") if d.label == "Runs as a file"]
    assert button.proto.disabled and "0 of 1 selected" in button.help


def test_a_fresh_machine_opens_the_recorded_course_runs_with_their_verdict(tmp_path, monkeypatch):
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "fresh"))
    app = compare_page()
    recorded = transfer.recorded_runs()
    (first,) = [b for b in app.button if b.key == f"compare_recorded_{recorded[0].key}"]
    first.click()
    app = run(app)
    said = [s.value for s in app.success]
    assert said[0] == f"Imported {recorded[0].runs} runs from {recorded[0].path.name}."
    picked = app.multiselect(key="compare_pick").value
    assert len(picked) == recorded[0].runs and set(picked) == set(store.list_runs()["id"])
    assert app.get("plotly_chart")
    assert any("95% interval" in text and "3 seeds each" in text for text in said[1:])  # the verdict
