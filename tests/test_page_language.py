"""中文 and English: the catalog is complete in both, the language comes from the link, the browser
or the sidebar's switch, and a page rendered in Chinese shows no English catalog text."""
from __future__ import annotations

import re
import string
from collections.abc import Sequence

import pytest
from babel.messages.pofile import read_po
from conftest import ROOT, run
from streamlit.testing.v1 import AppTest
from test_compare import make_run

from core import i18n
from core.runs import compare
from pages.ui import state as ui_state

PAGES = ("pages/lab.py", "pages/train.py", "pages/compare.py")
PLOTLY = re.compile(r"%\{[^}]*\}")


def catalog(lang: str) -> dict[str, str]:
    path = i18n.LOCALE_DIR / lang / "LC_MESSAGES" / f"{i18n.DOMAIN}.po"
    with path.open("rb") as f:
        return {m.id: ("" if m.fuzzy else m.string) for m in read_po(f, locale=lang) if m.id}


def template_ids() -> set[str]:
    with (i18n.LOCALE_DIR / f"{i18n.DOMAIN}.pot").open("rb") as f:
        return {m.id for m in read_po(f) if m.id}


def fields(text: str) -> list[tuple[str, str]]:
    """The format placeholders of a message: (name, format spec), sorted."""
    without_plotly = PLOTLY.sub("", text)
    return sorted((name, spec or "") for _, name, spec, _ in string.Formatter().parse(without_plotly) if name is not None)


def sample_value(spec: str):
    """A value that a placeholder with this format spec accepts."""
    if spec[-1:] in ("d", ",", "x"):
        return 3
    if spec[-1:] in ("g", "f", "e", "%"):
        return 1.5
    return "x"


def test_every_catalog_entry_is_translated_with_the_same_placeholders():
    zh = catalog("zh")
    missing = sorted(template_ids() - {k for k, v in zh.items() if v})
    assert not missing, f"{len(missing)} untranslated, e.g. {missing[:5]}"
    for msgid, text in zh.items():
        assert fields(text) == fields(msgid), msgid
        assert sorted(PLOTLY.findall(text)) == sorted(PLOTLY.findall(msgid)), msgid
        # and it formats with the values the English takes
        values = {name: sample_value(spec) for name, spec in fields(msgid)}
        assert text.format(**values) if values else text, msgid


def test_the_catalog_holds_every_string_of_the_code():
    assert {m.id for m in i18n.template() if m.id} == template_ids(), "run: python -m core.i18n update"


# ---- pages -------------------------------------------------------------------------------------


def shown_strings(message) -> list[str]:
    """Every string field of an element's protobuf message, nested ones too."""
    out = []
    for descriptor, value in message.ListFields():
        repeated = isinstance(value, Sequence) and not isinstance(value, (str, bytes)) or hasattr(value, "extend")
        values = value if repeated else [value]
        for v in values:
            if isinstance(v, str):
                out.append(v)
            elif hasattr(v, "ListFields"):
                out.extend(shown_strings(v))
    return out


def page_strings(app: AppTest) -> list[str]:
    found = []

    def walk(node):
        proto = getattr(node, "proto", None)
        if proto is not None and hasattr(proto, "ListFields"):
            found.extend(shown_strings(proto))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(app._tree)
    return found


def untranslated_patterns() -> list[tuple[str, re.Pattern]]:
    """The English messages that have a different Chinese text, as patterns of their formatted form."""
    zh = catalog("zh")
    patterns = []
    for msgid, text in zh.items():
        if not text or text == msgid or not re.search(r"[A-Za-z]{3,}", msgid):
            continue
        parts = re.split(r"\{[^{}]*\}", msgid)
        patterns.append((msgid, re.compile(".+?".join(map(re.escape, parts)) + r"\Z", re.DOTALL)))
    return patterns


def speak(lang: str, monkeypatch) -> None:
    """AppTest formats widget values in the test's own thread, outside any session: there the
    language is $AUGLAB_LANG's, which must be the page's for the values to match its options."""
    monkeypatch.setenv(i18n.LANGUAGE_ENV, lang)


def open_in(lang: str | None, page: str, monkeypatch, browser: str | None = None) -> AppTest:
    monkeypatch.setattr(ui_state, "browser_locale", lambda: browser)
    speak(lang if lang in i18n.LANGUAGES else "zh" if (browser or "").startswith("zh") else "en", monkeypatch)
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    if lang is not None:
        app.query_params[ui_state.LANG] = lang
    run(app)
    if page != PAGES[0]:
        app.switch_page(page)
        run(app)
    return app


def chinese(texts: list[str]) -> int:
    return sum(bool(re.search(r"[\u4e00-\u9fff]", t)) for t in texts)


@pytest.mark.parametrize("page", PAGES)
def test_a_page_in_chinese_shows_no_english_catalog_text(page, monkeypatch):
    if page == "pages/compare.py":  # with runs to compare: chart, table, verdict, exports
        # (names that are not catalog words: a run's name is shown as its owner wrote it)
        make_run(compare.seed_run_name("plain", 0), test_acc=(0.5, 0.7))
        make_run(compare.seed_run_name("plain", 1), test_acc=(0.52, 0.71))
        make_run("mixup", {"tricks": {"mixup_alpha": 0.2}}, test_acc=(0.4, 0.8))
    app = open_in("zh", page, monkeypatch)
    texts = page_strings(app)
    patterns = untranslated_patterns()
    left = sorted({msgid for t in texts for msgid, pattern in patterns if pattern.match(t)})
    assert not left, left[:10]
    assert chinese(texts) > 20
    assert app.session_state[ui_state.LANG] == "zh" and app.query_params[ui_state.LANG] == "zh"


def test_english_is_the_default_and_the_browsers_chinese_is_followed(monkeypatch):
    english = open_in(None, PAGES[0], monkeypatch, browser="en-GB")
    # in Chinese on an English page: the switch's label and "中文" in it and in the lesson link's language
    assert english.session_state[ui_state.LANG] == "en" and chinese(page_strings(english)) <= 3
    assert english.title[0].value == "Augmentation Lab"
    browser = open_in(None, PAGES[0], monkeypatch, browser="zh-CN")
    assert browser.session_state[ui_state.LANG] == "zh"
    assert browser.title[0].value == i18n._catalog("zh")["Augmentation Lab"]
    # the link wins over the browser
    assert open_in("en", PAGES[0], monkeypatch, browser="zh-CN").session_state[ui_state.LANG] == "en"


def test_the_sidebar_switch_changes_the_language_and_the_link_keeps_it(monkeypatch):
    app = open_in(None, PAGES[2], monkeypatch, browser="en-US")
    (switch,) = [w for w in app.sidebar.get("button_group") if w.label == ui_state.SWITCH_LABEL]
    switch.set_value("zh")
    run(app)
    speak("zh", monkeypatch)
    assert app.query_params[ui_state.LANG] == "zh" and chinese(page_strings(app)) >= 5
    app.switch_page(PAGES[1])  # another page keeps the language, in the session and in the URL
    run(app)
    assert app.session_state[ui_state.LANG] == "zh" and app.query_params[ui_state.LANG] == "zh"


def test_an_unknown_language_in_the_link_opens_the_page_in_english_with_a_message(monkeypatch):
    app = open_in("fr<script>", PAGES[0], monkeypatch, browser=None)
    assert app.session_state[ui_state.LANG] == "en"
    assert any("unknown language" in w.value for w in app.warning), [w.value for w in app.warning]
    assert app.query_params[ui_state.LANG] == "en"


def test_switching_the_language_keeps_what_the_widgets_hold(monkeypatch):
    app = open_in(None, "pages/train.py", monkeypatch, browser="en")
    device = next(s for s in app.selectbox if s.key.endswith("run.device"))
    device.set_value("cpu")
    run(app)
    (switch,) = [w for w in app.sidebar.get("button_group") if w.label == ui_state.SWITCH_LABEL]
    switch.set_value("zh")
    run(app)
    speak("zh", monkeypatch)
    device = next(s for s in app.selectbox if s.key.endswith("run.device"))
    assert device.value == "cpu" and "自动" in device.options  # the choices are shown in Chinese
