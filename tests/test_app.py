"""app.py's own work: what it does for every page, once per server."""
import gc

import pytest
from streamlit.testing.v1 import AppTest

from conftest import ROOT
from pages.ui import state


@pytest.fixture
def unfrozen(monkeypatch):
    """A fresh 'server': nothing frozen yet; whatever the test freezes is thawed afterwards."""
    gc.unfreeze()
    monkeypatch.setattr(state, "_heap_frozen", False)
    yield
    gc.unfreeze()


def test_the_start_up_heap_is_frozen_once_so_streamlits_collections_skip_it(unfrozen):
    assert gc.get_freeze_count() == 0
    state.freeze_startup_heap()
    frozen = gc.get_freeze_count()
    assert frozen > 10_000  # torch, pandas, plotly, streamlit: hundreds of thousands of objects
    assert len(gc.get_objects()) < frozen / 10  # what a full collection still has to scan
    [object() for _ in range(10)]
    gc.unfreeze()
    state.freeze_startup_heap()  # a second call (every later page run) freezes nothing more
    assert gc.get_freeze_count() == 0


def test_the_servers_settings_skip_per_run_collections_and_file_polling():
    """Each live tab's refresh is a script run: a full collection after each, and polling every
    source file for edits, were a fifth of a server's time with ten tabs live (README)."""
    import subprocess
    import sys

    code = ("import streamlit.config as c; "
            "print(c.get_option('runner.postScriptGC'), c.get_option('server.fileWatcherType'))")
    read = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          check=True).stdout.split()[-2:]
    assert read == ["False", "none"]


def test_app_freezes_the_heap_after_the_first_page_run(unfrozen, monkeypatch):
    calls = []
    monkeypatch.setattr(state, "freeze_startup_heap", lambda: calls.append(gc.get_freeze_count()))
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    app.run()
    assert not app.exception
    assert calls == [0]  # called at the end of the run, the page's imports done


def test_session_state_is_declared_in_one_place():
    """Every key a page keeps is declared in pages/ui/state.py's STATE; no page declares its own."""
    from pages.ui.state import STATE

    pages = {str(p.relative_to(ROOT)): p.read_text() for p in (ROOT / "pages").rglob("*.py") if p.name != "state.py"}
    assert "pages/ui/pipeline_editor.py" in pages and "pages/train.py" in pages
    for name, text in pages.items():
        assert "_STATE: dict" not in text and "_STATE = {" not in text, f"{name} declares its own state"
        for key in STATE:
            assert f'"{key}": lambda' not in text, f"{name} initialises {key} itself"
    assert {key.split("_")[0] for key in STATE} >= {"lab", "tr", "compare"}  # every page's, together
    for page, keys in (("pages/lab.py", "lab_"), ("pages/train.py", "tr_"), ("pages/compare.py", "compare_")):
        app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
        app.switch_page(page)
        app.run()
        assert not app.exception, app.exception
        assert all(key in app.session_state for key in STATE if key.startswith(keys)), page
