"""Lesson links (core.lessons): what a link carries, how it is read back, and every bad link refused."""
from __future__ import annotations

import io
from urllib.parse import parse_qsl, urlsplit

import pytest
from PIL import Image

from core import lessons
from core.augment import Pipeline
from core.lessons import Lesson, read_link
from core.runs import presets

LAB = Lesson(page="lab", lang="zh", sample="synthetic scene", pipeline=Pipeline.of("vflip", "grayscale"), seed=7,
             rows=1, cols=3, lock=frozenset({"pipeline", "seed"}), hide=frozenset({"mixing", "export"}))
TRAIN = Lesson(page="train", lang="en", preset="flip", budget="classroom", seeds=3, data="shapes",
               lock=frozenset({"preset"}), hide=frozenset({"editor"}))


def params_of(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


@pytest.mark.parametrize("lesson", [LAB, TRAIN], ids=["lab", "train"])
def test_a_lesson_read_back_from_its_link_is_the_same_lesson(lesson):
    url = lesson.url("http://teacher.local:8501")
    read, problems = read_link(lesson.page, params_of(url))
    assert problems == []
    assert read == lesson
    assert url.startswith("http://teacher.local:8501/train?" if lesson.page == "train" else "http://teacher.local:8501/?")


def test_control_states():
    assert [LAB.state_of(c.name) for c in lessons.CONTROLS["lab"]] == [
        "open", "locked", "locked", "open", "hidden", "open", "hidden"]
    assert LAB.shown("seed") and not LAB.is_open("seed") and not LAB.shown("export")
    states = {"picture": "locked", "grid": "hidden", "seed": "open"}
    assert Lesson(page="lab").with_controls(states) == Lesson(page="lab", lock=frozenset({"picture"}), hide=frozenset({"grid"}))


@pytest.mark.parametrize("url, root", [
    ("http://h:8501/train?preset=flip", "http://h:8501"),
    ("http://h:8501/?p=abc", "http://h:8501"),
    ("https://school.example/auglab/compare", "https://school.example/auglab"),
    ("https://school.example/auglab/", "https://school.example/auglab"),
    ("", ""),
])
def test_the_app_root_drops_the_page_and_the_query(url, root):
    assert lessons.app_root(url) == root


def test_unknown_keys_are_named_and_ignored_and_the_rest_is_used():
    lesson, problems = read_link("lab", {"seed": "4", "colour": "red", "zoom": "2", "embed": "true"})
    assert lesson.seed == 4
    assert [p.kind for p in problems] == ["warning"]
    assert "colour, zoom" in problems[0].text and "embed" not in problems[0].text


@pytest.mark.parametrize("page, key, value, message", [
    ("lab", "rows", "99", "rows must be a whole number from 1 to 4, got '99'"),
    ("lab", "cols", "-1", "columns must be a whole number from 1 to 6"),
    ("lab", "sample", "../../etc/passwd", "unknown sample picture"),
    ("lab", "seed", "-4", "seed 0 is shown"),
    ("lab", "p", "%%%not-base64%%%", "not URL-safe base64"),
    ("lab", "lock", "pipeline,teleport", "lock: unknown controls (teleport)"),
    ("lab", "lock", "export", "lock: unknown controls (export)"),  # a tab can be hidden, not locked
    ("lab", "hide", "everything", "hide: unknown controls (everything)"),
    ("train", "preset", "nope", "unknown preset 'nope'"),
    ("train", "seeds", "50", "seeds must be a whole number from 1 to 5"),
])
def test_a_bad_value_is_refused_with_its_message_and_nothing_else_changes(page, key, value, message):
    good = {"seed": "3"} if page == "lab" else {"preset": "flip"}
    lesson, problems = read_link(page, {**good, key: value})
    assert [p.kind for p in problems] == ["error"]
    assert message in problems[0].text
    expected = Lesson(page=page, seed=3) if page == "lab" else Lesson(page=page, preset="flip")
    if key in good:  # the bad value replaced the good one
        expected = Lesson(page=page)
    assert lesson == expected


def test_a_budget_the_preset_does_not_offer_is_refused():
    lesson, problems = read_link("train", {"preset": "flip", "budget": "forever"})
    assert lesson == Lesson(page="train", preset="flip")
    assert "budget 'forever' is not one of this preset's" in problems[0].text


def test_huge_links_and_values_are_refused():
    lesson, problems = read_link("lab", {"seed": "2", "p": "A" * (lessons.MAX_LINK + 10)})
    assert lesson == Lesson(page="lab") and "too long" in problems[0].text and "none of it was used" in problems[0].text
    lesson, problems = read_link("lab", {"seed": "2", "p": "A" * (lessons.MAX_VALUE + 1)})
    assert lesson == Lesson(page="lab", seed=2) and "The link's p is too long" in problems[0].text


def test_an_unknown_language_is_left_to_the_language_switch():
    lesson, problems = read_link("lab", {"lang": "xx"})
    assert lesson.lang is None and problems == []  # pages/ui/state.py says so, once


def test_the_links_seed_limit_is_the_presets():
    assert lessons.MAX_PRESET_SEEDS == presets.MAX_SEEDS


def test_the_qr_code_is_large_enough_for_a_projector():
    link = LAB.url("http://192.168.1.20:8501")
    image = Image.open(io.BytesIO(lessons.qr_png(link)))
    assert image.width == image.height and image.width >= 500
    svg = lessons.qr_svg(link).decode()
    assert "<svg" in svg and "</svg>" in svg
