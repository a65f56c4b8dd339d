"""Train from a notebook or a terminal; every run lands in the same store the dashboard reads.

Notebook:
    from core import cli
    from core.runs import store
    run_id = cli.run({"run": {"epochs": 2}, "tricks": {"mixup_alpha": 0.2}})   # blocks
    store.metrics(run_id)                                                        # pandas DataFrame

Terminal:
    python -m core.cli --dataset shapes --model fastcnn --epochs 3 --mixup 0.2
    python -m core.cli --config run.json --set optim.lr=0.1 --set run.seed=1
    python -m core.cli --model mlp --permute-pixels
    python -m core.cli --init-from RUN_ID --set optim.head_lr_mult=10 --set data.variant=few_colours
    python -m core.cli --print-config > run.json

Point AUGLAB_HOME at a shared folder and a run started on a GPU server appears in the dashboard.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from core.i18n import _, tr
from core.params import Param
from core.runs import store
from core.training.allocator import keep_freed_memory
from core.training.config import ConfigError, TrainConfig, apply_overrides, config_params, parse_value
from core.training.events import ConsoleSink, Event, Failed, FinalEvent, Finished, Stopped
from core.training.loop import fit

EXIT_FINISHED, EXIT_FAILED, EXIT_USAGE, EXIT_STOPPED = 0, 1, 2, 3


def run(
    config: TrainConfig | Mapping[str, Any] | None = None,
    name: str | None = None,
    *,
    sinks: Iterable[Callable[[Event], None]] = (),
    progress: bool = False,
) -> str:
    """Train in this process until the run ends, recording it in the store; returns the run id.

    The final status (finished, stopped or failed) and message are in `store.get_run(run_id)`.
    `progress` prints the CLI's progress lines; `sinks` receive every event as well.
    """
    cfg = _as_config(config)
    run_id = store.create_run(cfg, name, status="running")
    execute(run_id, cfg, sinks=[*sinks, ConsoleSink()] if progress else sinks)
    return run_id


def _as_config(config: TrainConfig | Mapping[str, Any] | None) -> TrainConfig:
    if config is None:
        return TrainConfig()
    return config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)


def execute(
    run_id: str,
    cfg: TrainConfig,
    *,
    sinks: Iterable[Callable[[Event], None]] = (),
    should_stop: Callable[[], bool] | None = None,
) -> FinalEvent:
    """Train the stored run `run_id`, recording every event; the store's stop flag is honoured."""
    recorder = store.StoreSink(run_id)
    stop = (lambda: should_stop() or recorder.should_stop()) if should_stop else recorder.should_stop
    try:
        return fit(
            cfg, sinks=[recorder, *sinks], run_id=run_id, should_stop=stop, artefact_dir=store.run_dir(run_id)
        )
    except KeyboardInterrupt:
        # Interrupted between step boundaries (a notebook's stop button): keep what was recorded.
        recorder.flush()
        store.set_status(run_id, "stopped", message=_("interrupted from the keyboard"))
        raise
    except BaseException as exc:
        # A sink failed (the trainer itself never raises): do not leave the run "running". When
        # the store itself is what failed (a full disk), recording that may fail too: then the
        # log says it, and the run reads "interrupted", pointing at the log.
        message = str(exc) if isinstance(exc, store.StoreError) else f"{type(exc).__name__}: {exc}"
        try:
            recorder.flush()
        except store.StoreError:
            pass  # the steps that could not be written are lost; the message below says why
        try:
            store.set_status(run_id, "failed", message=message)
        except Exception as again:  # noqa: BLE001  (the store's own error, whichever engine: said below)
            print(_("error: {message}; recording that failed too: {again}").format(message=message, again=again),
                  file=sys.stderr, flush=True)
        raise
    finally:
        try:
            recorder.close()
        except store.StoreError:
            pass  # said above


def run_stored(run_id: str, sinks: Iterable[Callable[[Event], None]] = ()) -> FinalEvent:
    """Train a run the runner queued (the `--run-id` entry point), then start the next queued run."""
    from core.runs import runner

    record = store.get_run(run_id)
    if record.status == "queued":
        store.set_status(run_id, "running", pid=os.getpid())
    elif record.status != "running":
        raise ConfigError(_("run {run_id} is {status}; only a queued or running run can be trained").format(
            run_id=run_id,
            status=record.status,
        ))
    try:
        with stop_on_signals() as signalled:
            return execute(run_id, record.train_config(), sinks=sinks, should_stop=signalled)
    finally:
        runner.tick()


@contextmanager
def stop_on_signals() -> Iterator[Callable[[], bool]]:
    """SIGINT/SIGTERM request a clean stop at the next step; a second Ctrl-C interrupts at once.

    The previous handlers come back afterwards. Off the main thread, where Python cannot install
    signal handlers, nothing is installed and only the store's stop flag stops the run.
    """
    requested: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return

    def handler(signum, frame):
        if requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        requested.append(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: bool(requested)
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


# ============================================================================ the CLI


def build_parser() -> argparse.ArgumentParser:
    """The command line: a flag for every config field, written from its declaration (core.training.config)."""
    p = argparse.ArgumentParser(
        prog="python -m core.cli",
        description=_(
            "Train an image classifier and record the run in the Augmentation Lab store "
            "(AUGLAB_HOME, default ~/.augmentation_lab). Every config field has a flag --SECTION.FIELD; the "
            "common ones have a short one too (--lr is --optim.lr)."
        ),
        epilog=_(
            "Precedence: defaults < --config < the field flags < --set. "
            "Exit codes: 0 finished, 1 failed, 2 bad arguments or config, 3 stopped."
        ),
    )
    p.add_argument("--config", type=Path, help=_("a TrainConfig JSON file (e.g. from --print-config)"))
    for section, params in _sections().items():
        group = p.add_argument_group(_("{section} (config section '{section}')").format(section=section))
        for key, param in params.items():
            _add_field_flags(group, key, param)
    augment = p.add_mutually_exclusive_group()
    augment.add_argument("--augment", help=_("train augmentation as JSON: a list of {op, params} steps"))
    augment.add_argument("--augment-file", type=Path, help=_("a pipeline JSON file saved from the augmentation page"))
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help=_("set any config key, e.g. --set schedule.warmup=1 --set model.options.width=0.5 (repeatable)"),
    )
    p.add_argument("--name", help=_("run name shown in the dashboard"))
    p.add_argument("--run-id", help=argparse.SUPPRESS)  # internal: train a run the runner queued
    p.add_argument("--nice", type=int, default=0, help=argparse.SUPPRESS)  # internal: the runner's trainer_nice()
    p.add_argument("--print-config", action="store_true", help=_("print the resulting config as JSON and exit"))
    p.add_argument("--quiet", action="store_true", help=_("print only the run id and the final line"))
    return p


_METAVARS = {"float": "X", "int": "N", "bool": "true|false", "text": "TEXT", "float_list": "X,X", "int_list": "N,N"}


def _sections() -> dict[str, dict[str, Param]]:
    """The fields with a flag (dotted key -> Param), by section; options and the pipeline have --set
    and --augment."""
    out: dict[str, dict[str, Param]] = {}
    for key, param in config_params().items():
        if param.kind != "object":
            out.setdefault(key.split(".")[0], {})[key] = param
    return out


def _add_field_flags(group: argparse._ArgumentGroup, key: str, param: Param) -> None:
    dest = f"field:{key}"
    metavar = "|".join(param.choices) if param.kind == "choice" else _METAVARS.get(param.kind, "VALUE")
    if param.flag and param.kind == "bool":
        # A short switch only ever turns its field on; --section.field takes true or false.
        group.add_argument(f"--{param.flag}", dest=dest, action="store_const", const=True, default=argparse.SUPPRESS,
                           help=_("{help} (the same as --{key} true)").format(help=tr(param.help), key=key).replace("%", "%%"))
        group.add_argument(f"--{key}", dest=dest, type=_parser(param), metavar=metavar, default=argparse.SUPPRESS,
                           help=_("true or false; --{flag} switches it on").format(flag=param.flag).replace("%", "%%"))
        return
    flags = [f"--{param.flag}", f"--{key}"] if param.flag else [f"--{key}"]
    # Absent unless given, so that a given "null" (None: not set) still counts.
    group.add_argument(*flags, dest=dest, type=_parser(param), metavar=metavar, default=argparse.SUPPRESS,
                       help=param.describe().replace("%", "%%"))


def _parser(param: Param) -> Callable[[str], Any]:
    """Text on the command line to a value; the config checks it and names the key if it is wrong."""
    def parse(text: str) -> Any:
        value = parse_value(text)
        if param.kind.endswith("_list") and isinstance(value, (str, int, float)):
            value = [parse_value(part) for part in str(text).split(",") if part.strip()]
        if param.kind == "text" and not isinstance(value, str) and value is not None:
            value = text  # a run id or a path that happens to look like a number
        if param.kind == "bool" and isinstance(value, str):
            value = {"yes": True, "no": False, "on": True, "off": False}.get(value.lower(), value)
        return value
    return parse


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    from core.augment import load_json

    cfg = TrainConfig.from_json(args.config.read_text()) if args.config else TrainConfig()
    overrides: dict[str, Any] = {
        dest.removeprefix("field:"): value for dest, value in vars(args).items() if dest.startswith("field:")
    }
    if overrides.get("model.name", cfg.model.name) != cfg.model.name:
        overrides["model.options"] = {}  # the old model's options mean nothing to the new one
    if args.augment is not None or args.augment_file is not None:
        text = args.augment if args.augment is not None else args.augment_file.read_text()
        try:
            pipeline, unused = load_json(text)
        except ValueError as exc:
            raise ConfigError(_("augment: {exc}").format(exc=exc)) from None
        overrides["augment.train"] = pipeline.to_list()
    for assignment in args.set:
        key, sep, value = assignment.partition("=")
        if not sep or not key.strip():
            raise ConfigError(_("--set expects KEY=VALUE, e.g. optim.lr=0.1; got {assignment!r}").format(assignment=assignment))
        overrides[key.strip()] = parse_value(value)
    return apply_overrides(cfg, overrides) if overrides else cfg


def lower_priority(niceness: int) -> int:
    """Run at niceness `niceness` or lower priority (never raised: a trainer started by a niced
    trainer stays where it is). Returns the niceness now; a no-op where os.nice is missing (Windows)."""
    if not hasattr(os, "nice"):
        return 0
    current = os.nice(0)
    return os.nice(niceness - current) if niceness > current else current


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    sinks = [] if args.quiet else [ConsoleSink()]
    lower_priority(args.nice)
    keep_freed_memory()  # a trainer reuses each batch's memory (core/training/allocator.py)
    try:
        if args.run_id:
            final = run_stored(args.run_id, sinks)
        else:
            cfg = config_from_args(args)
            if args.print_config:
                print(cfg.to_json())
                return EXIT_FINISHED
            run_id = store.create_run(cfg, args.name, status="running")
            print(_("run {run_id} recorded in {path}").format(run_id=run_id, path=store.where()), flush=True)
            with stop_on_signals() as signalled:
                final = execute(run_id, cfg, sinks=sinks, should_stop=signalled)
    except (ConfigError, OSError, LookupError, store.StoreError) as exc:
        print(_("error: {message}").format(message=exc), file=sys.stderr)
        return EXIT_USAGE
    if isinstance(final, Failed):
        print(_("error: {message}").format(message=final.message), file=sys.stderr)
        return EXIT_FAILED
    if args.quiet:
        ConsoleSink()(final)
    return EXIT_STOPPED if isinstance(final, Stopped) else EXIT_FINISHED if isinstance(final, Finished) else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
