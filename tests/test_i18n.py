"""core.i18n: one catalog for every user-visible string, read with Babel; and guards that keep it so."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from conftest import ROOT
from core import i18n
from core.i18n import _

# Streamlit calls whose first argument (and these keywords) a person reads.
UI_CALLS = {
    "title", "header", "subheader", "markdown", "caption", "info", "warning", "error", "success", "toast",
    "button", "download_button", "link_button", "checkbox", "toggle", "selectbox", "multiselect", "radio",
    "slider", "select_slider", "number_input", "text_input", "text_area", "file_uploader", "expander", "popover",
    "metric", "spinner", "progress", "tabs", "write", "segmented_control", "pills", "color_picker", "date_input",
}
UI_KEYWORDS = {"label", "help", "placeholder", "text", "caption"}
# The project's helpers that show their text argument (position of that argument).
HELPERS = {"flash": 1, "show_error": 0}
# Errors that are programming mistakes, never shown to a user as a message of their own.
INTERNAL = {"AssertionError", "NotImplementedError", "TypeError", "KeyError", "AttributeError", "StopIteration"}
WORDS = re.compile(r"[A-Za-z]{2,}")


def _literal_text(node: ast.AST) -> str | None:
    """The words a person would read in `node` if it is a string literal, an f-string or a sum of them."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value if WORDS.search(node.value) else None
    if isinstance(node, ast.JoinedStr):
        parts = "".join(v.value for v in node.values if isinstance(v, ast.Constant))
        return parts if WORDS.search(parts) else None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _literal_text(node.left) or _literal_text(node.right)
    if isinstance(node, ast.IfExp):
        return _literal_text(node.body) or _literal_text(node.orelse)
    if isinstance(node, (ast.List, ast.Tuple)):
        return next((t for t in map(_literal_text, node.elts) if t), None)
    return None


def _called(node: ast.Call) -> str | None:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None


def untranslated(path: Path) -> list[str]:
    """'file:line: text' for each string a person reads that does not come through `_`."""
    found = []
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _called(node)
        shown: list[ast.AST] = []
        if name in UI_CALLS and isinstance(node.func, ast.Attribute):
            shown += node.args[:1] + [k.value for k in node.keywords if k.arg in UI_KEYWORDS]
        elif name in HELPERS and len(node.args) > HELPERS[name]:
            shown.append(node.args[HELPERS[name]])
        elif name == "_" and node.args and not isinstance(node.args[0], ast.Constant):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: _() of a non-literal (not extractable)")
        for arg in shown:
            text = _literal_text(arg)
            if text:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {text[:60]!r}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and node.exc.args:
            if _called(node.exc) not in INTERNAL and (text := _literal_text(node.exc.args[0])):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: raise {text[:60]!r}")
    return found


def test_every_string_a_page_shows_comes_from_the_catalog():
    files = [ROOT / "app.py", *sorted((ROOT / "pages").rglob("*.py"))]
    problems = [p for f in files for p in untranslated(f)]
    assert not problems, f"{len(problems)} strings bypass core.i18n._:\n" + "\n".join(problems[:40])


def test_every_error_core_raises_for_a_user_comes_from_the_catalog():
    problems = [p for f in sorted((ROOT / "core").rglob("*.py")) for p in untranslated(f)]
    assert not problems, f"{len(problems)} error messages bypass core.i18n._:\n" + "\n".join(problems[:40])


def test_the_guard_finds_bare_strings(tmp_path, monkeypatch):
    monkeypatch.setattr("test_i18n.ROOT", tmp_path)
    page = tmp_path / "page.py"
    page.write_text(
        "st.error(f'Could not read {name}')\n"
        "cols[0].button('Launch', key='k')\n"
        "st.slider(_('Seed'), help='The seed')\n"
        "flash('error', 'Not launched')\n"
        "st.caption(_(f'{n} runs'))\n"
        "raise ConfigError(f'bad value {v!r}')\n"
        "st.markdown(f'**{i + 1}. {label}**')\n"  # no words of its own: fine
        "st.info(_('Nothing yet.'))\n"  # fine
        "raise TypeError('internal')\n"  # fine
    )
    lines = [int(p.split(":")[1]) for p in untranslated(page)]
    assert lines == [1, 2, 3, 4, 5, 6]


@pytest.fixture
def zh_catalog(tmp_path, monkeypatch):
    """A one-entry Chinese catalog, and the language taken from a session-like source."""
    from babel.messages.catalog import Catalog
    from babel.messages.pofile import write_po

    catalog = Catalog(locale="zh")
    catalog.add("Could not read {name}: {reason}.", "无法读取 {name}：{reason}。")
    catalog.add("Launch", "")  # not translated yet
    folder = tmp_path / "zh" / "LC_MESSAGES"
    folder.mkdir(parents=True)
    with (folder / "messages.po").open("wb") as f:
        write_po(f, catalog)
    monkeypatch.setattr(i18n, "LOCALE_DIR", tmp_path)
    chosen = {"lang": "zh"}
    before = i18n._source
    i18n.use_language_source(lambda: chosen["lang"])
    i18n.reload()
    yield chosen
    i18n.use_language_source(before)  # the UI's, where the pages registered it
    i18n.reload()


def test_a_translation_is_used_in_its_language_and_english_stays_the_fallback(zh_catalog, monkeypatch):
    message = _("Could not read {name}: {reason}.").format(name="cat.png", reason="not an image")
    assert message == "无法读取 cat.png：not an image。"
    assert _("Launch") == "Launch"  # untranslated: the English text
    assert _("Not in any catalog") == "Not in any catalog"
    zh_catalog["lang"] = "en"
    assert _("Could not read {name}: {reason}.") == "Could not read {name}: {reason}."
    zh_catalog["lang"] = "klingon"  # unknown: English
    assert i18n.language() == "en"
    zh_catalog["lang"] = None  # the source knows nothing: $AUGLAB_LANG, as the CLI uses
    monkeypatch.setenv(i18n.LANGUAGE_ENV, "zh")
    assert i18n.language() == "zh"


def test_a_failing_language_source_falls_back_instead_of_failing_the_message(monkeypatch):
    def broken():
        raise RuntimeError("no session here")

    monkeypatch.delenv(i18n.LANGUAGE_ENV, raising=False)
    before = i18n._source
    i18n.use_language_source(broken)
    try:
        assert i18n.language() == "en" and _("Launch") == "Launch"
    finally:
        i18n.use_language_source(before)


def test_the_template_holds_the_codes_strings_and_the_declared_ones():
    catalog = i18n.template()
    ids = {m.id for m in catalog if m.id}
    assert "Horizontal flip" in ids  # an op's label, declared in core/augment/ops.py
    assert any(str(loc[0]).startswith("pages/") for m in catalog for loc in m.locations)  # the pages' own
    assert any(str(loc[0]).startswith("core/") for m in catalog for loc in m.locations)  # core's errors
    for key, param in __import__("core.training.config", fromlist=["config_params"]).config_params().items():
        assert param.title in ids and param.help in ids, key
