"""The app in a real browser: build a pipeline, launch a preset, watch it train, compare.

Starts `streamlit run app.py` on a free loopback port with its own AUGLAB_HOME and drives
Debian's headless Chromium (/usr/bin/chromium) with Playwright; it never downloads a browser.
A screenshot of each step goes to $AUGLAB_SCREENSHOTS (default: the test's tmp folder); with
AUGLAB_UPDATE_SCREENSHOTS=1 the lab and compare screenshots also replace the README's in assets/.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]
playwright_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
if not Path(CHROMIUM).exists():
    pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)

UI_TIMEOUT_MS = 90_000  # a page's first run on a busy 2-core machine imports torch and builds data
# Points drawn in all of a page's plotly charts (plotly.js decodes the arrays the server sends
# into _fullData, where each trace's _length is its number of points).
PLOT_POINTS_JS = """() => Array.from(document.querySelectorAll('.js-plotly-plot'))
    .reduce((n, el) => n + (el._fullData || []).reduce((m, t) => m + (t._length || 0), 0), 0)"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(auglab_home, tmp_path):
    """The app on 127.0.0.1 with this test's AUGLAB_HOME; the server and its runs are always ended."""
    port = free_port()
    log_path = tmp_path / "streamlit.log"
    env = dict(os.environ, AUGLAB_HOME=str(auglab_home))
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"streamlit exited early:\n{log_path.read_text()[-3000:]}"
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"streamlit did not answer on {url}:\n{log_path.read_text()[-3000:]}"
            time.sleep(0.3)
        yield url
    finally:
        end_training_processes()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def end_training_processes() -> None:
    """Stop every run of this test's store, then kill any of their trainers still alive after a grace period."""
    from core import store

    runs = store.list_runs()
    for run_id in runs[runs["status"].isin(["queued", "running"])]["id"]:
        store.request_stop(run_id)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and store.list_runs()["status"].isin(["running"]).any():
        time.sleep(0.5)
    for pid, run_id in zip(runs["pid"], runs["id"]):
        if pid == pid and _is_trainer(int(pid), run_id):  # pid == pid: not NaN
            os.kill(int(pid), signal.SIGKILL)


def _is_trainer(pid: int, run_id: str) -> bool:
    """Whether pid is still the training process of run_id (a pid may have been reused)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"core.train" in cmdline and run_id.encode() in cmdline


@pytest.fixture
def page():
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.set_default_timeout(UI_TIMEOUT_MS)
            yield context.new_page()
        finally:
            browser.close()


@pytest.fixture
def shots(tmp_path):
    folder = Path(os.environ.get("AUGLAB_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def idle(page, timeout_s: float = 90) -> None:
    """Until Streamlit's 'running…' indicator is gone: the page has finished drawing."""
    deadline = time.monotonic() + timeout_s
    time.sleep(0.5)
    while page.get_by_test_id("stStatusWidget").count() and time.monotonic() < deadline:
        time.sleep(0.3)


def plot_points(page) -> int:
    return page.evaluate(PLOT_POINTS_JS)


def pick(page, label: str, option: str) -> None:
    """Choose an option of a Streamlit selectbox by typing it, as a keyboard user would."""
    box = page.get_by_role("combobox", name=label)
    box.click()
    box.fill(option)
    page.get_by_role("option", name=option).first.click()


def scroll_to_plot(page, which: int) -> None:
    """Scroll a chart into view (by script: a live chart is redrawn under a locator's feet)."""
    page.evaluate("(i) => { const plots = document.querySelectorAll('.js-plotly-plot');"
                  " if (plots.length) plots[(i + plots.length) % plots.length].scrollIntoView({block: 'center'}); }",
                  which)
    time.sleep(0.5)


def screenshot(page, folder: Path, name: str, readme_copy: str | None = None) -> Path:
    path = folder / f"{name}.png"
    page.screenshot(path=str(path))
    print(f"{time.strftime('%H:%M:%S')} screenshot {path}")
    if readme_copy and os.environ.get("AUGLAB_UPDATE_SCREENSHOTS") == "1":
        (ROOT / "assets").mkdir(exist_ok=True)
        shutil.copyfile(path, ROOT / "assets" / readme_copy)
    return path


def test_build_a_pipeline_launch_a_preset_watch_it_train_and_compare(server, page, shots):
    # ---- the lab: add an op to the pipeline
    page.goto(server)
    page.get_by_role("heading", name="Augmentation Lab").first.wait_for()
    idle(page)
    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_text("3. ColorJitter").wait_for()
    pick(page, "Augmentation to add", "occlusion · Cutout")
    sidebar.get_by_role("button", name="Add", exact=True).click()
    sidebar.get_by_text("4. Cutout").wait_for()
    idle(page)
    page.get_by_text("Cutout: ").first.wait_for()  # the preview grid shows what the new step drew
    screenshot(page, shots, "1_lab", "screenshot_lab.png")

    # ---- train: launch a preset on the embedded dataset
    sidebar.get_by_role("link", name="Train").click()
    page.get_by_role("heading", name="Train").first.wait_for()
    idle(page)
    page.get_by_text("Presets: the course's experiments in one click").click()
    pick(page, "Experiment", "Mixup vs baseline")
    idle(page)
    page.get_by_text("embedded Shapes").first.wait_for()  # CIFAR-10 is not here: the preset says it falls back
    screenshot(page, shots, "2_train_preset")
    page.get_by_role("button", name="Launch these 2 runs and compare them").click()

    # ---- the comparison opens with the preset's runs
    page.get_by_role("heading", name="Compare runs").wait_for()
    idle(page)
    assert page.get_by_text("Mixup vs baseline · baseline").count() >= 1
    screenshot(page, shots, "3_compare_launched")

    # ---- back on Train, the running run's curves grow
    sidebar.get_by_role("link", name="Train").click()
    page.get_by_role("heading", name="Runs").wait_for()
    page.get_by_role("button", name="Stop").wait_for()  # the monitor shows the running run
    before = plot_points(page)
    deadline = time.monotonic() + 90
    while plot_points(page) <= before + 4 and time.monotonic() < deadline:
        time.sleep(1)
    grown = plot_points(page)
    assert grown > before + 4, f"the live curves did not grow ({before} -> {grown} points)"
    scroll_to_plot(page, -1)
    screenshot(page, shots, "4_train_live")

    # ---- the comparison again: the preset's runs are still selected; per-step loss is drawn live
    sidebar.get_by_role("link", name="Compare").click()
    page.get_by_role("heading", name="Compare runs").wait_for()
    idle(page)
    pick(page, "Metric", "Train loss (per step)")
    page.locator(".js-plotly-plot").first.wait_for()
    first = plot_points(page)
    deadline = time.monotonic() + 30
    while plot_points(page) <= first and time.monotonic() < deadline:
        time.sleep(1)
    assert plot_points(page) > first, "the comparison did not refresh the running run's curve"
    assert page.get_by_text("What differs").count() == 1
    assert page.get_by_text("tricks.mixup_alpha").count() >= 1
    scroll_to_plot(page, 0)
    screenshot(page, shots, "5_compare", "screenshot_compare.png")
