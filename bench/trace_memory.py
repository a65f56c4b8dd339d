"""Where the server's memory goes while a page is live: tracemalloc snapshots of a real server.

Starts `streamlit run app.py` with Python's tracemalloc on (8 frames), opens the Train page on a
synthetic live run (bench/live_overhead.py's: ten steps a second, no training), takes a snapshot
after --warmup seconds and another after --minutes more, and prints the allocation sites that grew
most between the two, with the server's RSS at both moments. What grows in tracemalloc is Python's
own; RSS growth beyond it is native (allocator fragmentation, libraries' caches).

    python bench/trace_memory.py --minutes 10
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import live_overhead

# Runs in the server's process: tracemalloc from the start, a snapshot whenever a file appears.
SERVER = r"""
import os, sys, threading, time, tracemalloc
tracemalloc.start(8)
folder = sys.argv.pop(1)
def snapshots():
    n = 0
    while True:
        request = os.path.join(folder, f"take{n}")
        if os.path.exists(request):
            tracemalloc.take_snapshot().dump(os.path.join(folder, f"snap{n}"))
            open(os.path.join(folder, f"done{n}"), "w").close()
            n += 1
        time.sleep(0.5)
threading.Thread(target=snapshots, daemon=True).start()
from streamlit.web.cli import main
sys.argv = ["streamlit"] + sys.argv[1:]
main()
"""


def snapshot(folder: Path, n: int) -> Path:
    (folder / f"take{n}").touch()
    while not (folder / f"done{n}").exists():
        time.sleep(0.2)
    return folder / f"snap{n}"


def main() -> None:
    import tracemalloc

    import psutil
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=90.0)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="auglab_trace_"))
    folder = home / "snapshots"
    folder.mkdir()
    os.environ["AUGLAB_HOME"] = str(home)
    port = live_overhead.free_port()
    url = f"http://127.0.0.1:{port}"
    with open(home / "streamlit.log", "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(folder), "run", "app.py", "--server.headless", "true", "--server.port",
             str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    stop = threading.Event()
    try:
        import urllib.request

        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        proc = psutil.Process(server.pid)
        run_id = live_overhead.synthetic_run(stop)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=live_overhead.CHROMIUM, args=live_overhead.CHROMIUM_ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{url}/train?run={run_id}", wait_until="domcontentloaded")
            page.locator('[class*="st-key-tr-live-"] .js-plotly-plot').first.wait_for(timeout=600_000)  # tracing slows the server
            time.sleep(args.warmup)
            rss0 = proc.memory_info().rss / 2**20
            first = tracemalloc.Snapshot.load(snapshot(folder, 0))
            t0 = time.monotonic()
            time.sleep(args.minutes * 60)
            rss1 = proc.memory_info().rss / 2**20
            second = tracemalloc.Snapshot.load(snapshot(folder, 1))
            elapsed = time.monotonic() - t0
            browser.close()
    finally:
        stop.set()
        server.terminate()
        server.wait(20)
    filters = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen importlib._bootstrap>")]
    first, second = first.filter_traces(filters), second.filter_traces(filters)
    total0 = sum(s.size for s in first.statistics("filename")) / 2**20
    total1 = sum(s.size for s in second.statistics("filename")) / 2**20
    hours = elapsed / 3600
    print(f"{elapsed:.0f} s live: RSS {rss0:.0f} -> {rss1:.0f} MB ({(rss1 - rss0) / hours:+.1f} MB/h); "
          f"Python heap (tracemalloc) {total0:.1f} -> {total1:.1f} MB ({(total1 - total0) / hours:+.1f} MB/h)")
    print(f"top {args.top} growing allocation sites (size growth, count growth), innermost project or library frame:")
    for stat in second.compare_to(first, "traceback")[: args.top]:
        frames = [f for f in stat.traceback if "tracemalloc" not in f.filename]
        where = next((f for f in reversed(frames) if "/work/" in f.filename and "site-packages" not in f.filename), frames[-1])
        print(f"  {stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7d}  {frames[-1].filename}:{frames[-1].lineno}"
              f"  (from {where.filename}:{where.lineno})")


if __name__ == "__main__":
    main()
