"""Does the app survive load and faults? Runs each check and prints what held, with its figures.

1. faults: the fault tests, run by pytest and reported one by one (kill -9 of the server mid-run,
   kill -9 of a trainer, of a Ray worker, a damaged store file, a disk that fills while a run
   writes, a zip member that declares gigabytes).
2. sessions: one app server, --sessions browser sessions (10) at once, each under its own queue
   name; each launches a one-epoch run on the Train page and keeps watching it live. While they
   train, one more tab, in a browser of its own at normal priority (a student's laptop; the ten
   sessions' browsers are niced, --browser-nice, standing in for the other students' machines),
   opens each session's run on the Train page in turn and is timed until the page has rendered
   (heading, Launch button, the server's run over): the median and 95th percentile of those
   render times are the page's responsiveness under that load, with the cores the server used.
   Then: every run finished (none lost, none failed), each run carries its session's name, and
   each session's Compare page lists all of them.
3. zip: a dataset zip holding one 1 GB image member (zeros, ~1 MB compressed), opened as a
   dataset in a fresh process: the time until it is refused and the process's peak memory above
   what importing the app costs.
4. memory: the server's memory while a page shows a live run for --minutes (the method of
   bench/live_overhead.py, which has the hour-long variant).

    python bench/soak.py                      # all four, ~12 minutes on 2 cores
    python bench/soak.py --only sessions --sessions 10
    python bench/soak.py --only zip,memory --minutes 10

Needs Debian's chromium, the playwright package and psutil (bench/requirements.txt); the faults
part also needs what the tests need (.ci/postgres.sh for the PostgreSQL half, Ray for its tests).
Everything it records goes to temporary folders.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import live_overhead  # the server, browser and memory helpers
from bench._common import machine_line

FAULT_TESTS = [
    ("kill -9 of the app server mid-run", "tests/test_e2e_browser.py", "killed_server"),
    ("kill -9 of a trainer", "tests/test_runner.py", "killed_training_process"),
    ("kill -9 of a Ray worker, a lost node, an app killed after submitting", "tests/test_ray_backend.py",
     "killed or lost or exits"),
    ("a damaged store file", "tests/test_store.py", "damaged_store"),
    ("a disk that fills while a run writes", "tests/test_faults.py", "disk"),
    ("a zip member that declares gigabytes", "tests/test_data.py", "member"),
]
SESSION_EPOCHS = 1


def faults() -> bool:
    print("1. faults (the tests that hold them):", flush=True)
    ok = True
    for label, path, selector in FAULT_TESTS:
        start = time.monotonic()
        out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", path, "-k", selector],
                             cwd=ROOT, capture_output=True, text=True, check=False)
        passed = len(re.findall(r"^PASSED ", out.stdout, re.MULTILINE))
        failed = len(re.findall(r"^(FAILED|ERROR) ", out.stdout, re.MULTILINE))
        skipped = len(re.findall(r"^SKIPPED ", out.stdout, re.MULTILINE))
        held = out.returncode == 0 and passed > 0
        ok &= held
        print(f"   {'held' if held else 'FAILED'}: {label} ({passed} passed, {failed} failed, {skipped} skipped, "
              f"{time.monotonic() - start:.0f} s; {path} -k '{selector}')", flush=True)
        if not held:
            print(textwrap.indent(out.stdout[-3000:], "      "))
    return ok


def _rendered(page, timeout_s: float = 120.0) -> None:
    page.get_by_role("heading", name="Train").first.wait_for(timeout=timeout_s * 1000)
    page.get_by_role("button", name="Launch", exact=True).wait_for(timeout=timeout_s * 1000)
    live_overhead.wait_until_idle(page, timeout_s)


def _renice_browsers(nice: int) -> None:
    """Chromium's processes at a lower priority: in a class each student's browser runs on the
    student's own machine, not on the 2 cores the server and the trainers share."""
    import psutil

    def renice(process) -> None:
        try:
            process.nice(nice)
        except psutil.Error:
            pass

    for process in psutil.Process().children(recursive=True):
        try:
            if "chrom" not in process.name().lower():
                continue
            children = process.children(recursive=True)
        except psutil.Error:  # a renderer that ended meanwhile
            continue
        renice(process)
        for child in children:
            renice(child)


def sessions(n: int, nice: int = 0) -> bool:
    from playwright.sync_api import sync_playwright

    from core.runs import store

    home = Path(tempfile.mkdtemp(prefix="auglab_soak_"))
    os.environ["AUGLAB_HOME"] = str(home)
    os.environ["AUGLAB_MAX_CONCURRENT"] = "2"
    print(f"2. sessions: {n} browser sessions launch and watch a run each (AUGLAB_HOME={home}; the browsers "
          f"{f'at nice {nice}, standing in for the students own machines' if nice else 'on the same cores'})", flush=True)
    renders: list[float] = []
    with live_overhead.streamlit_server(home) as (server, url), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=live_overhead.CHROMIUM, args=live_overhead.CHROMIUM_ARGS, headless=True)
        if nice:
            _renice_browsers(nice)
        pages, names = [], []
        for i in range(n):
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            page.set_default_timeout(120_000)
            if nice:
                _renice_browsers(nice)  # each tab's renderer is a new process
            t = time.monotonic()
            page.goto(f"{url}/train", wait_until="domcontentloaded")
            _rendered(page)
            renders.append(time.monotonic() - t)
            name = f"soak student {i + 1}"
            box = page.get_by_role("textbox", name="Your name in the queue")
            box.fill(name)
            box.press("Enter")
            live_overhead.wait_until_idle(page)
            page.get_by_role("tab", name="Run", exact=True).click()
            epochs = page.get_by_role("spinbutton", name="Epochs", exact=True)
            epochs.fill(str(SESSION_EPOCHS))
            epochs.press("Enter")
            live_overhead.wait_until_idle(page)
            page.get_by_role("button", name="Launch", exact=True).click()
            live_overhead.wait_until_idle(page)
            pages.append(page)
            names.append(name)
        print(f"   {n} runs launched; their first renders: median {statistics.median(renders):.2f} s", flush=True)
        renders = []
        launched = store.list_runs()
        # the timed tab: a browser of its own at the server's priority (a student's own laptop)
        mine = p.chromium.launch(executable_path=live_overhead.CHROMIUM, args=live_overhead.CHROMIUM_ARGS, headless=True)
        timed = mine.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        timed.set_default_timeout(120_000)
        cpu = live_overhead.CpuUse(server.pid)
        deadline = time.monotonic() + 60 * 30
        while True:  # open each session's run in the timed tab while all ten stay live, until every run has ended
            for run_id in launched["id"]:
                t = time.monotonic()
                timed.goto(f"{url}/train?run={run_id}", wait_until="domcontentloaded")
                _rendered(timed)
                renders.append(time.monotonic() - t)
            runs = store.list_runs()
            if not runs["status"].isin(["queued", "running"]).any() or time.monotonic() > deadline:
                break
        server_cores, browser_cores = cpu.cores()
        mine.close()
        ids = list(runs["id"])
        seen = []
        for page in pages:
            page.goto(f"{url}/compare?runs={','.join(ids)}", wait_until="domcontentloaded")
            page.get_by_role("heading", name="Compare runs").wait_for()
            live_overhead.wait_until_idle(page)
            picker = page.get_by_test_id("stMultiSelect").first.inner_text()
            seen.append(sum(name in picker for name in runs["name"]))
        browser.close()
    finished = int((runs["status"] == "finished").sum())
    owners = sorted(set(runs["owner"].dropna()))
    p95 = statistics.quantiles(renders, n=20)[-1] if len(renders) >= 2 else renders[0]
    held = len(launched) == n and finished == n and owners == sorted(names) and all(s == n for s in seen)
    print(f"   runs: {len(runs)} launched, {finished} finished, statuses {dict(runs['status'].value_counts())}; "
          f"{len(owners)} owners; each Compare page listed {min(seen)}-{max(seen)} of {n}")
    print(f"   Train page render under load: median {statistics.median(renders):.2f} s, 95th percentile "
          f"{p95:.2f} s, max {max(renders):.2f} s over {len(renders)} renders ({os.cpu_count()} CPUs); "
          f"the server used {server_cores:.2f} cores, the browsers {browser_cores:.2f}, meanwhile")
    print(f"   {'held' if held else 'FAILED'}: all finished, none lost, each sees all", flush=True)
    return held


ZIP_CHILD = r"""
import resource, sys, time
sys.path.insert(0, sys.argv[2])
from core.data import DatasetError, load_dataset
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.monotonic()
try:
    load_dataset("zip:" + sys.argv[1])
    outcome = "READ (not refused)"
except DatasetError as exc:
    outcome = "refused: " + str(exc)
took = time.monotonic() - t
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"{took:.3f} {(after - before) / 1024:.1f} {outcome}")
"""


def zip_member() -> bool:
    folder = Path(tempfile.mkdtemp(prefix="auglab_soak_zip_"))
    path = folder / "bomb.zip"
    print("3. zip: a dataset zip with one 1 GB image member", flush=True)
    chunk = bytes(16 * 2**20)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        z.writestr("cat/ok.png", b"not really a png")
        with z.open("dog/huge.png", "w", force_zip64=True) as member:
            for unused in range(64):  # 1 GiB of zeros
                member.write(chunk)
    env = {**os.environ, "AUGLAB_HOME": str(folder / "home")}
    out = subprocess.run([sys.executable, "-c", ZIP_CHILD, str(path), str(ROOT)], capture_output=True, text=True,
                         env=env, check=False)
    took, peak, outcome = out.stdout.strip().split(" ", 2)
    held = outcome.startswith("refused") and float(took) < 1.0 and float(peak) < 64
    print(f"   {path.stat().st_size / 2**20:.1f} MB on disk; {outcome[:160]}")
    print(f"   refused after {float(took) * 1000:.0f} ms, peak memory +{float(peak):.1f} MB above the imports")
    print(f"   {'held' if held else 'FAILED'}: refused before reading, memory bounded", flush=True)
    return held


def memory(minutes: float) -> bool:
    home = Path(tempfile.mkdtemp(prefix="auglab_soak_mem_"))
    os.environ["AUGLAB_HOME"] = str(home)
    print(f"4. memory: the server while the Train page shows a live run for {minutes:g} min "
          f"(after {live_overhead.WARMUP_S:.0f} s of warm-up)", flush=True)
    with live_overhead.streamlit_server(home) as (server, url), live_overhead.browser_page() as page:
        rss = live_overhead.Rss(server.pid)
        live_overhead.open_app(page, url)
        m = live_overhead.memory(page, url, rss, minutes)
    growth = m["end"] - m["start"]
    per_hour = growth / (m["seconds"] / 3600) if m["seconds"] else 0.0
    held = growth <= live_overhead.TARGET_GROWTH_MB
    print(f"   {m['updates']} live updates in {m['seconds']:.0f} s; RSS start {m['start']:.0f} MB, end {m['end']:.0f} MB, "
          f"peak {m['peak']:.0f} MB: {growth:+.1f} MB ({per_hour:+.0f} MB an hour at that pace)")
    print(f"   {'held' if held else 'FAILED'}: growth within {live_overhead.TARGET_GROWTH_MB:g} MB", flush=True)
    return held


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="faults,sessions,zip,memory", help="comma-separated parts to run")
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--browser-nice", type=int, default=10,
                        help="niceness of the browsers in the sessions part (0: compete with the server as equals)")
    parser.add_argument("--minutes", type=float, default=3.0, help="the memory part's live minutes")
    args = parser.parse_args()
    print(machine_line(), flush=True)
    parts = {"faults": faults, "sessions": lambda: sessions(args.sessions, args.browser_nice), "zip": zip_member,
             "memory": lambda: memory(args.minutes)}
    chosen = [p.strip() for p in args.only.split(",") if p.strip()]
    results = {name: parts[name]() for name in chosen}
    print("what held: " + ", ".join(f"{name} {'yes' if ok else 'NO'}" for name, ok in results.items()))
    sys.exit(0 if all(results.values()) else 1)


if __name__ == "__main__":
    main()
