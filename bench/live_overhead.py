"""What watching a run live costs: training speed with the dashboard open, and the server's memory.

1. Throughput. The same run trains twice: once from the CLI with no dashboard running, once
   queued through core.runs.runner (what the Train page's Launch button calls) while headless Chromium
   shows it on the Train page, whose curves redraw every second. Both speeds are the median of
   the per-step images/s the run store recorded, after the first steps (warm-up). CLI and app
   runs alternate for --repeats rounds; the median of the rounds' ratios app/CLI should stay
   >= 0.95.
2. Memory. A synthetic run (this script writes ten steps a second into the store, no training)
   stays live on the Train page for --minutes; the Streamlit server's RSS is sampled with psutil,
   and every live update the browser receives is counted from the websocket (one finished
   fragment run each). An hour at one update a second is 3600 updates per live fragment; the
   server should stay flat within 50 MB. Nothing is sped up: the page's own refresh interval is
   used, so a long run means a long --minutes (the README's figure used --minutes 60).

    python bench/live_overhead.py                  # 3 rounds of two 40 s runs, then 3 minutes of live updates
    python bench/live_overhead.py --minutes 60     # the README's memory figure
    python bench/live_overhead.py --skip-throughput --minutes 10
    python bench/live_overhead.py --side-by-side MALLOC_ARENA_MAX=2 --minutes 60   # two servers, one with the variable

Needs Debian's chromium (/usr/bin/chromium), the playwright package and psutil; it never
downloads a browser. Everything it records goes to a temporary AUGLAB_HOME (or --home).
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]
TARGET_RATIO = 0.95
TARGET_GROWTH_MB = 50.0
WARMUP_FRACTION = 0.1  # steps at the start of a run left out of its speed: allocation, caches
WARMUP_S = 60.0  # live updates before the memory baseline is taken


# ---- the dashboard in a browser ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def streamlit_server(home: Path, timeout: float = 90.0, env: dict | None = None) -> Iterator[tuple[subprocess.Popen, str]]:
    """`streamlit run app.py` on a free loopback port; stopped (killed if need be) on exit.
    env: variables set for the server on top of this process's."""
    port = free_port()
    env = dict(os.environ, **(env or {}), AUGLAB_HOME=str(home))
    with open(home / "streamlit.log", "wb") as log:  # the server keeps its own descriptor
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port",
             str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with {proc.returncode}; see {home / 'streamlit.log'}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"streamlit did not answer on {url} within {timeout:g} s")
            time.sleep(0.3)
        yield proc, url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@contextmanager
def browser_page() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser.new_page(viewport={"width": 1400, "height": 1000})
        finally:
            browser.close()


class UpdateCounter:
    """Counts the live updates a page receives: websocket messages that end a fragment run."""

    def __init__(self, page) -> None:
        from google.protobuf.message import DecodeError
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        self._message = ForwardMsg
        self._decode_error = DecodeError
        self.fragment_runs = 0
        page.on("websocket", lambda ws: ws.on("framereceived", self._frame))

    def _frame(self, payload) -> None:
        if not isinstance(payload, (bytes, bytearray)):
            return
        try:
            msg = self._message.FromString(bytes(payload))
        except self._decode_error:  # not a ForwardMsg (a future protocol change): count nothing
            return
        if msg.WhichOneof("type") == "script_finished" and msg.script_finished == msg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY:
            self.fragment_runs += 1


# Points drawn in the Train page's live curves: Streamlit gives a keyed element the class
# st-key-<key> (the page keys them tr-live-<run id>-...), and plotly.js decodes the arrays the
# server sends into _fullData, where each trace's _length is its number of points.
LIVE_POINTS_JS = """() => Array.from(document.querySelectorAll('[class*="st-key-tr-live-"] .js-plotly-plot'))
    .reduce((n, el) => n + (el._fullData || []).reduce((m, t) => m + (t._length || 0), 0), 0)"""


def open_app(page, url: str) -> None:
    # The app's root first, as a person would (a tab opened straight on /train works too since
    # pages/ui/state.run_through_the_app; the browser test holds that).
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_role("heading", name="Augmentation Lab").first.wait_for(timeout=90_000)


def wait_until_idle(page, timeout_s: float = 120.0) -> None:
    """Until Streamlit's 'running' indicator is gone (the page's first full run is over)."""
    deadline = time.monotonic() + timeout_s
    time.sleep(1.0)
    while time.monotonic() < deadline:
        if page.locator('[data-testid="stStatusWidget"]').count() == 0:
            return
        time.sleep(0.5)


# ---- throughput --------------------------------------------------------------------------------


def bench_config(epochs: int, subset: float, threads: int):
    from core.training.config import TrainConfig

    # The Train page's default config on the embedded dataset, lengthened (6 epochs by default) so
    # that each run trains for about 40 s on a 2-core laptop: long enough that opening the page is
    # a small part of it; the default batch of 64 gives hundreds of steps for a stable median.
    return TrainConfig.from_dict(
        {"data": {"subset": subset}, "run": {"epochs": epochs, "batch_size": 64, "threads": threads}}
    )


def images_per_s(run_id: str) -> tuple[float, int]:
    """Median images/s over the run's steps after the warm-up, and how many steps that is."""
    from core.runs import store

    speeds = store.metrics(run_id, "step")["images_per_s"].dropna().tolist()
    skip = max(3, int(len(speeds) * WARMUP_FRACTION))
    kept = speeds[skip:]
    if not kept:
        raise RuntimeError(f"run {run_id} recorded only {len(speeds)} steps: too short to measure")
    return statistics.median(kept), len(kept)


def cli_run(config, home: Path, name: str) -> str:
    from core.runs import store

    path = home / "bench_config.json"
    path.write_text(config.to_json())
    env = dict(os.environ, AUGLAB_HOME=str(home))
    subprocess.run([sys.executable, "-m", "core.cli", "--config", str(path), "--name", name, "--quiet"],
                   cwd=ROOT, env=env, check=True)
    runs = store.list_runs()
    return runs[runs["name"] == name]["id"].iloc[0]


class CpuUse:
    """CPU time of the Streamlit server and of the browser's processes, as cores used on average.

    On a machine shared with other work the throughput ratio mixes the dashboard's cost with
    everyone else's; the cores the dashboard itself kept busy are the figure that carries over.
    """

    def __init__(self, server_pid: int) -> None:
        import psutil

        self.psutil = psutil
        self.server = psutil.Process(server_pid)
        self.start = time.monotonic()
        self.server_start = self._cpu(self.server)
        self.browser_start = self._browser()

    @staticmethod
    def _cpu(process) -> float:
        times = process.cpu_times()
        return times.user + times.system

    def _browser(self) -> dict[int, float]:
        used = {}
        for child in self.psutil.Process().children(recursive=True):
            try:
                if "chrom" in child.name():
                    used[child.pid] = self._cpu(child)
            except self.psutil.Error:  # a renderer that just ended
                pass
        return used

    def cores(self) -> tuple[float, float]:
        """(server, browser) average cores since construction (a browser process that ended is not counted)."""
        wall = time.monotonic() - self.start
        server = self._cpu(self.server) - self.server_start
        browser = sum(t - self.browser_start.get(pid, 0.0) for pid, t in self._browser().items())
        return server / wall, browser / wall


def app_run(config, page, url: str, name: str, rss: Rss, server_pid: int) -> tuple[str, int, int, tuple[float, float]]:
    """Queue the run as the Train page does and watch it there until it ends.

    Returns the run id, the live updates received, the largest number of points the page's live
    curves showed (which must have grown while the run trained) and the dashboard's CPU use.
    """
    from core.runs import runner, store

    page.goto(f"{url}/train", wait_until="domcontentloaded")
    page.get_by_role("heading", name="Train").first.wait_for(timeout=90_000)
    wait_until_idle(page)  # the page times a few steps for its cost estimate: not during the run
    counter = UpdateCounter(page)
    cpu = CpuUse(server_pid)
    run_id = runner.launch(config, name)
    page.goto(f"{url}/train?run={run_id}", wait_until="domcontentloaded")
    first_points = None
    most = 0
    while True:
        points = page.evaluate(LIVE_POINTS_JS)
        if points and first_points is None:
            first_points = points
        most = max(most, points)
        rss.sample()
        record = store.get_run(run_id)
        if record.is_final:
            break
        time.sleep(1.0)
    cores = cpu.cores()
    if record.status != "finished":
        raise RuntimeError(f"the app run ended {record.status}: {record.message}")
    if first_points is None or most <= first_points:
        raise RuntimeError(f"the Train page's curves did not grow while the run trained ({first_points} -> {most} points)")
    return run_id, counter.fragment_runs, most, cores


# ---- memory ------------------------------------------------------------------------------------


class Rss:
    """RSS samples of one process, in MB."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.process = psutil.Process(pid)
        self.samples: list[tuple[float, float]] = []

    def sample(self) -> float:
        mb = self.process.memory_info().rss / 2**20
        self.samples.append((time.monotonic(), mb))
        return mb


def synthetic_run(stop: threading.Event, steps_per_s: float = 10.0, steps_per_epoch: int = 100) -> str:
    """A 'running' run fed by a thread of this process: steps at a steady pace, an evaluation per epoch."""
    import math

    from core.runs import store
    from core.training.config import TrainConfig
    from core.training.events import Eval, Started, Step, Stopped

    cfg = TrainConfig()
    run_id = store.create_run(cfg, "bench: synthetic live run", status="running")
    total = 10**6  # never reached: the run is stopped when the measurement ends

    def feed() -> None:
        sink = store.StoreSink(run_id)
        start = time.monotonic()
        sink(Started(run_id, cfg.to_dict(), "cpu (synthetic)", 0, steps_per_epoch, total, 5000, 1000,
                     tuple(str(i) for i in range(10)), 3, 32, (0.5,) * 3, (0.25,) * 3))
        step = 0
        while not stop.is_set():
            step += 1
            wall = time.monotonic() - start
            loss = 2.3 * math.exp(-step / 3000) + 0.1 * math.sin(step / 7)
            sink(Step(step, step / steps_per_epoch, loss, 1 - loss / 2.4, 0.05, 1000.0, wall))
            if step % steps_per_epoch == 0:
                sink(Eval(step // steps_per_epoch, step, loss, 1 - loss / 2.4, loss * 1.1, 1 - loss / 2.2, wall))
            stop.wait(max(0.0, step / steps_per_s - (time.monotonic() - start)))
        sink(Stopped(step, step / steps_per_epoch, time.monotonic() - start, "benchmark over"))
        sink.close()

    threading.Thread(target=feed, name="synthetic-run", daemon=True).start()
    return run_id


def side_by_side(assignment: str, minutes: float, samples: Path | None = None) -> None:
    """Two servers at once, each showing its own synthetic live run in its own tab: one as shipped,
    one with the environment variable `assignment` (NAME=VALUE) set. The same load, the same
    minutes, in one process: their growth is the comparison."""
    from contextlib import ExitStack

    name, sep, value = assignment.partition("=")
    if not sep or not name:
        raise SystemExit(f"--side-by-side expects NAME=VALUE, got {assignment!r}")
    variants = {"as shipped": {}, assignment: {name: value}}
    stop = threading.Event()
    with ExitStack() as stack:
        from playwright.sync_api import sync_playwright

        p = stack.enter_context(sync_playwright())
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        stack.callback(browser.close)
        watched = {}
        for name, env in variants.items():
            home = Path(tempfile.mkdtemp(prefix="auglab_side_"))
            os.environ["AUGLAB_HOME"] = str(home)  # the synthetic run is written into this server's store
            run_id = synthetic_run(stop)
            server, url = stack.enter_context(streamlit_server(home, env=env))
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            open_app(page, url)
            page.goto(f"{url}/train?run={run_id}", wait_until="domcontentloaded")
            page.locator('[class*="st-key-tr-live-"] .js-plotly-plot').first.wait_for(timeout=120_000)
            watched[name] = (Rss(server.pid), page)
        stack.callback(stop.set)
        print(f"   warm-up {WARMUP_S:g} s, then {minutes:g} min with both live…", flush=True)
        time.sleep(WARMUP_S)
        t0 = time.monotonic()
        series = {name: [rss.sample()] for name, (rss, unused) in watched.items()}
        while time.monotonic() - t0 < minutes * 60:
            time.sleep(10.0)
            for name, (rss, page) in watched.items():
                series[name].append(rss.sample())
                if page.evaluate(LIVE_POINTS_JS) == 0:
                    raise RuntimeError(f"{name}: the Train page stopped showing the live run's curves")
        window = max(1, min(6, len(series[next(iter(series))]) // 3))
        for name, values in series.items():
            start, end = statistics.median(values[:window]), statistics.median(values[-window:])
            print(f"   {name}: start {start:.0f} MB, end {end:.0f} MB, peak {max(values):.0f} MB, growth {end - start:+.1f} MB "
                  f"in {(time.monotonic() - t0) / 60:.0f} min", flush=True)
        if samples:
            names = list(series)
            rows = zip(*(series[n] for n in names))
            samples.write_text("sample," + ",".join(names) + "\n"
                               + "".join(f"{i}," + ",".join(f"{v:.1f}" for v in row) + "\n" for i, row in enumerate(rows)))


def memory(page, url: str, rss: Rss, minutes: float) -> dict:
    """RSS every 10 s while the page stays live. Start and end are medians of the first and last
    minute's samples: one sample can land on a transient (a redraw in flight, a collection pending)."""
    stop = threading.Event()
    run_id = synthetic_run(stop)
    try:
        counter = UpdateCounter(page)
        page.goto(f"{url}/train?run={run_id}", wait_until="domcontentloaded")
        page.locator('[class*="st-key-tr-live-"] .js-plotly-plot').first.wait_for(timeout=120_000)
        # Opening the Train page loads its dataset and times a few training steps for its estimate;
        # the server gives that memory back within about a minute, so the baseline is taken after it.
        time.sleep(WARMUP_S)
        start_updates = counter.fragment_runs
        t0 = time.monotonic()
        first = len(rss.samples)
        samples = [rss.sample()]
        while time.monotonic() - t0 < minutes * 60:
            time.sleep(min(10.0, max(0.1, minutes * 60 - (time.monotonic() - t0))))
            samples.append(rss.sample())
            if page.evaluate(LIVE_POINTS_JS) == 0:
                raise RuntimeError("the Train page stopped showing the live run's curves")
        window = max(1, min(6, len(samples) // 3))
        return {"start": statistics.median(samples[:window]), "end": statistics.median(samples[-window:]),
                "peak": max(samples), "updates": counter.fragment_runs - start_updates,
                "seconds": time.monotonic() - t0, "samples": rss.samples[first:]}
    finally:
        stop.set()


# ---- main --------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=3.0, help="live updates watched for the memory part (README: 60)")
    parser.add_argument("--epochs", type=int, default=6, help="epochs of each throughput run")
    parser.add_argument("--subset", type=float, default=1.0, help="share of the shapes training set per run")
    parser.add_argument("--threads", type=int, default=0,
                        help="run.threads of both runs (0: every core, the default config's choice)")
    parser.add_argument("--repeats", type=int, default=3, help="alternating CLI/app rounds of the throughput part")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--home", type=Path, help="AUGLAB_HOME to use (default: a new temporary folder)")
    parser.add_argument("--side-by-side", metavar="NAME=VALUE",
                        help="only the memory part, on two servers at once: as shipped and with this variable set")
    parser.add_argument("--samples", type=Path,
                        help="also write the memory part's RSS samples here (CSV: seconds, MB), to see its trend")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        sys.exit(f"{CHROMIUM} not found: install Debian's chromium package (apt-get install chromium)")

    if args.side_by_side:
        print(f"memory, side by side ({os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}):", flush=True)
        side_by_side(args.side_by_side, args.minutes, args.samples)
        return
    home = args.home or Path(tempfile.mkdtemp(prefix="auglab_bench_"))
    home.mkdir(parents=True, exist_ok=True)
    os.environ["AUGLAB_HOME"] = str(home)
    print(f"AUGLAB_HOME={home}  ({os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f})", flush=True)
    config = bench_config(args.epochs, args.subset, args.threads)

    ratios = []
    for repeat in range(0 if args.skip_throughput else args.repeats):
        # CLI and app runs alternate, so that a change in the machine's load hits both
        print(f"1. throughput, round {repeat + 1} of {args.repeats}: CLI run, no dashboard…", flush=True)
        cli_id = cli_run(config, home, f"bench: CLI {repeat + 1}")
        cli_speed, cli_steps = images_per_s(cli_id)
        print(f"   CLI: {cli_speed:,.0f} images/s (median of {cli_steps} steps)", flush=True)
        with streamlit_server(home) as (server, url), browser_page() as page:
            open_app(page, url)
            print("   app: the same run launched with the Train page open and live…", flush=True)
            app_id, updates, points, (server_cores, browser_cores) = app_run(
                config, page, url, f"bench: app {repeat + 1}", Rss(server.pid), server.pid)
        app_speed, app_steps = images_per_s(app_id)
        ratios.append(app_speed / cli_speed)
        print(f"   app: {app_speed:,.0f} images/s (median of {app_steps} steps; {updates} live updates, "
              f"curves grew to {points} points)")
        print(f"   ratio app/CLI: {ratios[-1]:.3f}; the dashboard kept busy {server_cores:.2f} cores (server) + "
              f"{browser_cores:.2f} (browser) of {os.cpu_count()}; load average now {os.getloadavg()[0]:.1f}", flush=True)
    if ratios:
        median = statistics.median(ratios)
        verdict = "ok" if median >= TARGET_RATIO else f"below the {TARGET_RATIO} target"
        print(f"   ratio app/CLI over {len(ratios)} rounds: median {median:.3f}, range {min(ratios):.3f}-{max(ratios):.3f} "
              f"({verdict})", flush=True)
    if args.skip_memory:
        return

    with streamlit_server(home) as (server, url), browser_page() as page:
        rss = Rss(server.pid)
        open_app(page, url)
        print(f"2. memory: the Train page showing a live run for {args.minutes:g} min…", flush=True)
        m = memory(page, url, rss, args.minutes)
        if args.samples:
            t0 = m["samples"][0][0]
            args.samples.write_text("seconds,rss_mb\n" + "".join(f"{t - t0:.1f},{mb:.1f}\n" for t, mb in m["samples"]))
        growth = m["end"] - m["start"]
        verdict = "ok" if growth <= TARGET_GROWTH_MB else f"above the {TARGET_GROWTH_MB:g} MB target"
        rate = m["updates"] / m["seconds"] if m["seconds"] else 0.0
        print(f"   {m['updates']} live updates in {m['seconds']:.0f} s ({rate:.2f}/s, all fragments)")
        print(f"   server RSS: start {m['start']:.0f} MB, end {m['end']:.0f} MB, peak {m['peak']:.0f} MB, "
              f"growth {growth:+.1f} MB ({verdict})", flush=True)


if __name__ == "__main__":
    main()
