"""The app in a real browser: build a pipeline, launch a preset, watch it train, compare.

Starts `streamlit run app.py` on a free loopback port with its own AUGLAB_HOME and drives
Debian's headless Chromium (/usr/bin/chromium) with Playwright; it never downloads a browser.
A screenshot of each step goes to $AUGLAB_SCREENSHOTS (default: the test's tmp folder); with
AUGLAB_UPDATE_SCREENSHOTS=1 the lab and compare screenshots also replace the README's in assets/.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from conftest import ROOT
from core.runs import store

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
PLOT_POINTS_JS = """(selector) => Array.from(document.querySelectorAll(selector + ' .js-plotly-plot'))
    .reduce((n, el) => n + (el._fullData || []).reduce((m, t) => m + (t._length || 0), 0), 0)"""
# The Train page's live curves: Streamlit gives a keyed element the class st-key-<key>.
TRAIN_LIVE = '[class*="st-key-tr-live-"]'
COMPARE_CHART = ".st-key-compare_chart"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`streamlit run app.py` on 127.0.0.1 with a test's AUGLAB_HOME; started again on the same port
    after a kill, as a crashed server that a supervisor restarts."""

    def __init__(self, home: Path, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        # Two runs at once, so that the comparison shows both of the preset's runs growing.
        self.env = dict(os.environ, AUGLAB_HOME=str(home), AUGLAB_MAX_CONCURRENT="2")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                 "--server.port", str(self.port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 60
        while True:
            assert self.proc.poll() is None, f"streamlit exited early:\n{self.log_path.read_text()[-3000:]}"
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            assert time.monotonic() < deadline, f"streamlit did not answer on {self.url}:\n{self.log_path.read_text()[-3000:]}"
            time.sleep(0.3)

    def kill9(self) -> None:
        self.proc.kill()  # SIGKILL: no clean-up of any kind
        self.proc.wait(10)

    def end(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def app_server(auglab_home, tmp_path):
    """The app's server (a Server); it and its runs are always ended."""
    server = Server(auglab_home, tmp_path / "streamlit.log")
    try:
        server.start()
        yield server
    finally:
        end_training_processes()
        server.end()


@pytest.fixture
def server(app_server):
    """The app's address."""
    return app_server.url


def end_training_processes() -> None:
    """Stop every run of this test's store and kill the trainers still alive: the store is thrown away."""
    runs = store.list_runs()
    for run_id in runs[runs["status"].isin(["queued", "running"])]["id"]:
        store.request_stop(run_id)  # a queued run never starts
    for pid, run_id in zip(runs["pid"], runs["id"]):
        if pd.notna(pid) and _is_trainer(int(pid), run_id):
            os.kill(int(pid), signal.SIGKILL)


def _is_trainer(pid: int, run_id: str) -> bool:
    """Whether pid is still the training process of run_id (a pid may have been reused)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"core.cli" in cmdline and run_id.encode() in cmdline


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


def plot_points(page, selector: str) -> int:
    return page.evaluate(PLOT_POINTS_JS, selector)


def wait_for_growth(page, selector: str, timeout_s: float) -> tuple[int, int]:
    """Points in the charts under `selector` once they show some, and once more have been added."""
    deadline = time.monotonic() + timeout_s
    while (first := plot_points(page, selector)) == 0 and time.monotonic() < deadline:
        time.sleep(0.5)
    while (now := plot_points(page, selector)) <= first and time.monotonic() < deadline:
        time.sleep(0.5)
    return first, now


def wait_for_points(page, selector: str, at_least: int, timeout_s: float = 60) -> int:
    """Points in the charts under `selector` once plotly has drawn at least `at_least` (or the time is up)."""
    deadline = time.monotonic() + timeout_s
    while (points := plot_points(page, selector)) < at_least and time.monotonic() < deadline:
        time.sleep(0.3)
    return points


def pick(page, label: str, option: str) -> None:
    """Choose an option of a Streamlit selectbox by typing it, as a keyboard user would."""
    box = page.get_by_role("combobox", name=label)
    box.click()
    box.fill(option)
    page.get_by_role("option", name=option).first.click()


def screenshot(page, folder: Path, name: str, readme_copy: str | None = None) -> Path:
    path = folder / f"{name}.png"
    page.screenshot(path=str(path))
    print(f"{time.strftime('%H:%M:%S')} screenshot {path}")
    if readme_copy and os.environ.get("AUGLAB_UPDATE_SCREENSHOTS") == "1":
        (ROOT / "assets").mkdir(exist_ok=True)
        shutil.copyfile(path, ROOT / "assets" / readme_copy)
    return path


def test_build_a_pipeline_launch_a_preset_watch_it_train_and_compare(server, page, shots):
    print(f"{time.strftime('%H:%M:%S')} start")
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
    # the grid's tiles are computed at the size shown; one opens at the working picture's size
    grid_tile = page.get_by_test_id("stImage").filter(has_text="#3 · ").first.locator("img")
    page.get_by_role("radio", name="#3", exact=True).click()  # st.pills: one choice, a radio group
    full = page.get_by_test_id("stImage").filter(has_text="Tile 3 at full size").locator("img")
    full.wait_for()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=full.element_handle())
    assert full.evaluate("img => img.naturalWidth") > grid_tile.evaluate("img => img.naturalWidth")

    # ---- train: launch a preset on the embedded dataset
    sidebar.get_by_role("link", name="Train").click()
    page.get_by_role("heading", name="Train").first.wait_for()
    idle(page)
    page.get_by_text("Presets: the course's experiments in one click").click()
    pick(page, "Experiment", "Flip augmentation vs none")
    idle(page)
    screenshot(page, shots, "2_train_preset")
    page.get_by_role("button", name=re.compile(r"Launch these \d+ runs and compare them")).click()

    # ---- the comparison opens with the preset's runs
    page.get_by_role("heading", name="Compare runs").wait_for()
    idle(page)
    runs = store.list_runs()
    assert len(runs) >= 2 and set(runs["dataset"]) == {"shapes"}  # CIFAR-10 is not here: the embedded set
    picker = page.get_by_test_id("stMultiSelect")
    for name in runs["name"]:
        picker.get_by_text(name, exact=False).first.wait_for()
    screenshot(page, shots, "3_compare_launched")

    # ---- back on Train, the running run's curves grow
    sidebar.get_by_role("link", name="Train").click()
    page.get_by_role("heading", name="Runs").wait_for()
    first, later = wait_for_growth(page, TRAIN_LIVE, timeout_s=90)
    assert 0 < first < later, f"the Train page's live curves did not grow ({first} -> {later} points)"
    page.evaluate("(s) => document.querySelector(s).scrollIntoView({block: 'center'})", TRAIN_LIVE)
    screenshot(page, shots, "4_train_live")

    # ---- the comparison again: the preset's runs are still selected, their per-step loss drawn live
    sidebar.get_by_role("link", name="Compare").click()
    page.get_by_role("heading", name="Compare runs").wait_for()
    idle(page)
    pick(page, "Metric", "Train loss (per step)")
    first, later = wait_for_growth(page, COMPARE_CHART, timeout_s=45)
    assert 0 < first < later, f"the comparison did not refresh the running runs' curves ({first} -> {later} points)"
    assert page.get_by_text("What differs").count() == 1
    assert page.get_by_text("augment.train").count() >= 1
    if os.environ.get("AUGLAB_UPDATE_SCREENSHOTS") == "1":
        # for the README: let both curves grow a while longer than the test needs
        deadline = time.monotonic() + 120
        while plot_points(page, COMPARE_CHART) < 30 and time.monotonic() < deadline:
            time.sleep(2)
    page.evaluate("(s) => document.querySelector(s).scrollIntoView({block: 'center'})", COMPARE_CHART)
    screenshot(page, shots, "5_compare", "screenshot_compare.png")


def test_a_chinese_link_opens_in_chinese_and_the_switch_goes_back_to_english(server, page, shots):
    page.goto(f"{server}/?lang=zh")
    page.get_by_role("heading", name="增广实验室").first.wait_for()
    idle(page)
    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_text("要添加的增广操作").wait_for()  # the sidebar's labels, in Chinese too
    screenshot(page, shots, "6_lab_zh", "screenshot_lab_zh.png")
    assert "lang=zh" in page.url
    # another page keeps the language, in the page and in the URL
    page.get_by_test_id("stSidebarNav").get_by_text("对比").click()
    page.get_by_role("heading", name="对比训练运行").wait_for()
    assert "lang=zh" in page.url
    # the switch, labelled in both languages, brings English back
    sidebar.get_by_role("radio", name="English").click()
    page.get_by_role("heading", name="Compare runs").wait_for()
    idle(page)
    assert "lang=en" in page.url


def tile_captions(page) -> list[str]:
    """The preview grid's captions ("#1 · Horizontal flip: flipped · ..."), as the browser shows them."""
    texts = page.get_by_test_id("stImageCaption").all_inner_texts()
    return [t for t in texts if t.startswith("#")]


def test_a_lesson_link_built_by_a_teacher_opens_the_same_grid_locked_in_a_fresh_browser(server, page, shots):
    page.goto(server)
    page.get_by_role("heading", name="Augmentation Lab").first.wait_for()
    idle(page)
    seed = page.get_by_role("spinbutton", name="Seed")
    seed.fill("7")
    seed.press("Enter")
    idle(page)
    page.get_by_role("tab", name="Export").click()
    page.get_by_role("radiogroup", name="Seed and New samples").get_by_role("radio", name="locked").click()
    idle(page)
    page.get_by_role("radiogroup", name="Pipeline (steps and their settings)").get_by_role("radio", name="locked").click()
    idle(page)
    page.get_by_role("radiogroup", name="Export tab").get_by_role("radio", name="hidden").click()
    idle(page)
    link = page.get_by_test_id("stCode").filter(has_text="lock=").inner_text().strip()
    assert link.startswith(server) and "seed=7" in link
    page.get_by_role("img", name="Scan to open the lesson").or_(page.get_by_text("Scan to open the lesson")).first.wait_for()
    screenshot(page, shots, "7_lesson_teacher")
    page.get_by_role("tab", name="Preview").click()
    teacher_tiles = tile_captions(page)
    assert len(teacher_tiles) == 8

    # a student: another browser, nothing in common with the teacher's but the link
    student = page.context.browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    student.set_default_timeout(UI_TIMEOUT_MS)
    student.goto(link)
    student.get_by_role("heading", name="Augmentation Lab").first.wait_for()
    idle(student)
    student.get_by_text("A lesson link set up this page").wait_for()
    student.get_by_test_id("stImageCaption").filter(has_text="#8 · ").wait_for()
    screenshot(student, shots, "8_lesson_student")
    assert tile_captions(student) == teacher_tiles
    assert student.get_by_role("spinbutton", name="Seed").is_disabled()
    assert student.get_by_role("tab", name="Export").count() == 0
    assert student.get_by_role("button", name="New samples").count() == 0
    assert student.get_by_role("combobox", name="Augmentation to add").count() == 0  # no add row


def test_a_killed_server_leaves_the_run_training_and_a_reopened_page_shows_it_live(app_server, page, shots):
    """kill -9 of the app mid-run: the trainer goes on, nothing it recorded is lost, and after a
    restart both a fresh tab opened straight on the run's URL and the old tab that reconnects get
    the navigation and the live run."""
    page.goto(f"{app_server.url}/train")
    page.get_by_role("heading", name="Train").first.wait_for()
    idle(page)
    page.get_by_role("tab", name="Run", exact=True).click()
    epochs = page.get_by_role("spinbutton", name="Epochs", exact=True)
    epochs.fill("40")  # long enough to outlive everything below; the test stops it
    epochs.press("Enter")
    idle(page)
    page.get_by_role("button", name="Launch", exact=True).click()
    deadline = time.monotonic() + 120
    while (runs := store.list_runs()).empty or not (runs["step"].fillna(0) >= 2).any():
        assert time.monotonic() < deadline, "the launched run did not start training"
        time.sleep(0.5)
    run_id = runs["id"].iloc[0]
    trainer = int(store.get_run(run_id).pid)

    app_server.kill9()
    before = store.list_runs()["step"].iloc[0]
    time.sleep(3)
    assert _is_trainer(trainer, run_id), "the trainer died with the server"
    assert store.get_run(run_id).status == "running"
    assert store.list_runs()["step"].iloc[0] > before  # still training, with no server at all

    app_server.start()  # the same port, as a supervisor restarting it would
    fresh = page.context.new_page()
    fresh.goto(f"{app_server.url}/train?run={run_id}")
    nav = fresh.get_by_test_id("stSidebarNav")
    nav.get_by_text("Augmentation Lab", exact=True).wait_for()
    nav.get_by_text("Compare", exact=True).wait_for()
    first, later = wait_for_growth(fresh, TRAIN_LIVE, timeout_s=90)
    assert 0 < first < later, f"the reopened page's live curves did not grow ({first} -> {later} points)"
    screenshot(fresh, shots, "9_after_server_kill")
    # the tab that was open when the server died reconnects to the new one, navigation included
    page.bring_to_front()  # a background tab's timers (its reconnect among them) are throttled
    page.get_by_test_id("stSidebarNav").get_by_text("Compare", exact=True).wait_for()
    first, later = wait_for_growth(page, TRAIN_LIVE, timeout_s=90)
    assert 0 < first < later, "the old tab did not show the run live again after reconnecting"

    fresh.get_by_role("button", name="Stop").click()
    record = None
    deadline = time.monotonic() + 60
    while not (record := store.get_run(run_id)).is_final:
        assert time.monotonic() < deadline, "the run did not stop"
        time.sleep(0.3)
    assert record.status == "stopped"
    steps = store.metrics(run_id, "step")["step"].tolist()
    assert steps == list(range(1, len(steps) + 1)), "steps were lost or doubled across the server's kill"


def test_a_sweep_is_plotted_with_its_best_and_a_probe_draws_accuracy_under_corruption(server, page, shots):
    from test_verdict import seeded

    from core import cli

    sweep_ids = []
    for eps, accs in ((0.0, (0.60, 0.61, 0.62)), (0.1, (0.70, 0.71, 0.69)), (0.2, (0.66, 0.67, 0.65))):
        sweep_ids += seeded(f"sweep ε {eps}", accs, {"tricks": {"label_smoothing": eps}})
    page.goto(f"{server}/compare?runs={','.join(sweep_ids)}")
    page.get_by_role("heading", name="Sweep: Label smoothing ε").wait_for()
    idle(page)
    page.get_by_text("Best: ").first.wait_for()
    assert page.get_by_text("Label smoothing ε = 0.1").count() >= 1
    assert wait_for_points(page, ".st-key-compare-sweep-chart", 3 + 1) >= 3 + 1  # three means and the best's star
    page.evaluate("(s) => document.querySelector(s).scrollIntoView({block: 'center'})", ".st-key-compare-sweep-chart")
    screenshot(page, shots, "6_sweep")

    tiny = {"data": {"subset": 0.05, "image_size": 16}, "model": {"options": {"width": 0.25}},
            "run": {"epochs": 1, "batch_size": 32, "threads": 1, "amp": "off"}}
    probed = [cli.run(tiny, "plain"), cli.run({**tiny, "augment": {"train": [{"op": "color_jitter", "params": {}}]}},
                                             "colour jitter")]
    page.goto(f"{server}/compare?runs={','.join(probed)}")
    page.get_by_role("heading", name="Robustness: accuracy on corrupted test images").wait_for()
    idle(page)
    pick(page, "Corruption", "Brightness")
    idle(page)
    page.get_by_role("button", name="Probe", exact=True).click()
    page.get_by_text("Brightness: test accuracy").wait_for()
    idle(page)
    strengths = 6  # robustness.CORRUPTIONS["brightness"].strengths
    assert wait_for_points(page, ".st-key-compare-probe-chart", 2 * strengths) == 2 * strengths  # one curve per run
    page.evaluate("(s) => document.querySelector(s).scrollIntoView({block: 'center'})", ".st-key-compare-probe-chart")
    screenshot(page, shots, "7_probe")
