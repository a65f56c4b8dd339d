"""app.py's own work: what it does for every page, once per server."""
import gc

import pytest
from streamlit.testing.v1 import AppTest

from conftest import ROOT
from pages import _common


@pytest.fixture
def unfrozen(monkeypatch):
    """A fresh 'server': nothing frozen yet; whatever the test freezes is thawed afterwards."""
    gc.unfreeze()
    monkeypatch.setattr(_common, "_heap_frozen", False)
    yield
    gc.unfreeze()


def test_the_start_up_heap_is_frozen_once_so_streamlits_collections_skip_it(unfrozen):
    assert gc.get_freeze_count() == 0
    _common.freeze_startup_heap()
    frozen = gc.get_freeze_count()
    assert frozen > 10_000  # torch, pandas, plotly, streamlit: hundreds of thousands of objects
    assert len(gc.get_objects()) < frozen / 10  # what a full collection still has to scan
    [object() for _ in range(10)]
    gc.unfreeze()
    _common.freeze_startup_heap()  # a second call (every later page run) freezes nothing more
    assert gc.get_freeze_count() == 0


def test_app_freezes_the_heap_after_the_first_page_run(unfrozen, monkeypatch):
    calls = []
    monkeypatch.setattr(_common, "freeze_startup_heap", lambda: calls.append(gc.get_freeze_count()))
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    app.run()
    assert not app.exception
    assert calls == [0]  # called at the end of the run, the page's imports done
