"""Lesson links on the pages (AppTest): a teacher builds one, a student opening it lands exactly there."""
from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest
from conftest import ROOT, open_train_page, run
from streamlit.testing.v1 import AppTest
from test_page_lab import tiles

from core.augment import Pipeline


def lab(params: dict[str, str] | None = None) -> AppTest:
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    app.query_params.update(params or {})
    return run(app)


def train(params: dict[str, str]) -> AppTest:
    app = AppTest.from_file(str(ROOT / "pages" / "train.py"), default_timeout=60)
    app.session_state["tr_auto_estimate"] = False
    app.query_params.update(params)
    return run(app)


def lesson_link(app: AppTest) -> str:
    return next(c.value for c in app.code if "lock=" in c.value or "hide=" in c.value)


def query(link: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(link).query))


def tab_labels(app: AppTest) -> list[str]:
    return [t.label for t in app.tabs]


def test_a_lab_lesson_round_trip_opens_the_same_grid_with_its_controls_locked_or_hidden():
    teacher = lab()
    teacher.selectbox(key="lab_sample").set_value("synthetic scene")
    teacher.slider(key="lab_rows").set_value(1)
    teacher.number_input(key="lab_seed").set_value(7)
    run(teacher)
    for control, how in (("pipeline", "locked"), ("seed", "locked"), ("mixing", "hidden"), ("export", "hidden")):
        teacher.segmented_control(key=f"lab_lesson_link_{control}").set_value(how)
    teacher.segmented_control(key="lab_lesson_link_lang").set_value("en")
    run(teacher)
    link = lesson_link(teacher)
    assert query(link)["lock"] == "pipeline,seed" and query(link)["hide"] == "mixing,export"
    assert any(image.captions == ["Scan to open the lesson"] for image in teacher.image)  # the QR code
    assert teacher.session_state["lab_lesson"].lock == frozenset()  # building a link changes nothing here

    student = lab(query(link))
    assert tiles(student) == tiles(teacher) and len(tiles(student)) == 4
    assert student.session_state["lab_pipeline"] == teacher.session_state["lab_pipeline"]
    assert tab_labels(student) == ["Preview", "ImageNet view"]
    assert student.number_input(key="lab_seed").disabled
    assert student.slider(key="lab_rows").value == 1 and not student.slider(key="lab_rows").disabled
    assert student.selectbox(key="lab_sample").value == "synthetic scene"
    step_slider = next(s for s in student.sidebar.slider if s.key.endswith("-hflip-p"))
    assert step_slider.disabled
    assert not [b for b in student.button if b.key in ("lab-new-samples", "lab-add")]
    assert "A lesson link set up this page" in student.info[0].value
    assert not student.error and not student.warning


def test_a_hidden_picture_and_pipeline_are_still_the_lessons():
    student = lab({"sample": "synthetic scene", "seed": "2", "hide": "picture,pipeline,grid"})
    assert not [s for s in student.sidebar.selectbox if s.key == "lab_sample"]
    assert not [s for s in student.sidebar.slider]  # no step cards
    assert not [s for s in student.slider if s.key in ("lab_rows", "lab_cols")]
    assert next(c for i in student.image for c in i.captions if c.startswith("Original: ")).startswith(
        "Original: synthetic scene")
    assert len(tiles(student)) == 8


def test_a_lesson_in_chinese():
    student = lab({"lang": "zh", "hide": "export"})
    assert student.title[0].value == "增广实验室"
    assert "导出" not in tab_labels(student)


@pytest.mark.parametrize("params, message", [
    ({"rows": "99"}, "rows must be a whole number from 1 to 4"),
    ({"lock": "teleport"}, "unknown controls (teleport)"),
    ({"sample": "nope"}, "unknown sample picture 'nope'"),
    ({"p": "A" * 9000}, "The link is too long"),
])
def test_a_bad_lesson_link_opens_the_lab_with_a_message_and_its_defaults(params, message):
    student = lab({"seed": "5", **params})
    assert message in "\n".join(e.value for e in student.error)
    assert student.slider(key="lab_rows").value == 2 and not student.slider(key="lab_rows").disabled
    assert student.session_state["lab_pipeline"] == Pipeline.of("hflip", "random_resized_crop", "color_jitter")
    assert student.number_input(key="lab_seed").value == (0 if "p" in params else 5)
    assert len(tab_labels(student)) == 4


def test_unknown_settings_in_a_link_are_named():
    student = lab({"zoom": "3"})
    assert "this page does not know (zoom)" in student.warning[0].value


def test_a_train_lesson_opens_the_preset_locked_with_the_editor_hidden():
    student = train({"preset": "lenet_vgg", "seeds": "3", "lock": "preset", "hide": "editor,preset_launch"})
    assert student.selectbox(key="tr_preset").value == "lenet_vgg" and student.selectbox(key="tr_preset").disabled
    assert student.number_input(key="tr_preset_seeds").value == 3 and student.number_input(key="tr_preset_seeds").disabled
    assert not [b for b in student.button if b.key in ("tr-launch", "tr-launch-preset")]
    assert "Data" not in tab_labels(student)  # the editor's tabs
    assert "A lesson link set up this page" in student.info[0].value


def test_the_train_page_builds_a_preset_lesson():
    teacher = open_train_page()
    teacher.selectbox(key="tr_preset").set_value("lenet_vgg")
    teacher.segmented_control(key="tr_lesson_link_preset").set_value("locked")
    run(teacher)
    link = lesson_link(teacher)
    assert urlsplit(link).path.endswith("/train")
    assert query(link) | {"lang": "en"} == {"preset": "lenet_vgg", "budget": "classroom", "seeds": "1",
                                             "lock": "preset", "lang": "en"}
    student = train(query(link))
    assert student.selectbox(key="tr_preset").value == "lenet_vgg" and student.selectbox(key="tr_preset").disabled


def test_a_bad_train_link_keeps_the_default_preset():
    student = train({"preset": "nope", "data": "zip:/nowhere.zip"})
    assert "unknown preset 'nope'" in student.error[0].value
    assert student.selectbox(key="tr_preset").value == "flip" and not student.selectbox(key="tr_preset").disabled
