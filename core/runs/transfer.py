"""Runs that travel: a group of ended runs as one file, and that file back into another store.

    data = transfer.export_runs([a, b], weights=True)      # bytes of one .zip
    result = transfer.import_runs(data)                    # on another machine: ids added, ids skipped

The file is a zip: `manifest.json` (format, version, the runs, the versions that wrote it), then for
each run `runs/<id>/run.json` (name, config, status, times, summary), `runs/<id>/metrics.csv` (every
step and evaluation row) and optionally `runs/<id>/weights.pt` and `runs/<id>/log.txt`.

An import trusts nothing in the file: the archive's names, sizes and compression ratio, the
manifest, every run's config (validated like any other) and fields, the metric rows, and the
weights (read with torch's weights-only loader, then loaded into the model the config builds).
A file that fails any check is refused with a message saying what is wrong, and the store is
left as it was; the runs of a good file are added in one transaction.
"""
from __future__ import annotations

import io
import json
import math
import re
import shutil
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from core import versions
from core.i18n import _
from core.paths import home
from core.runs import store
from core.training.config import ConfigError, TrainConfig

FORMAT = "auglab-runs"
VERSION = 1
SUFFIX = ".auglab.zip"
MAX_FILE_BYTES = 512 * 2**20  # the file as uploaded
MAX_UNPACKED_BYTES = 1024 * 2**20  # what it unpacks to, all members together
MAX_MEMBER_BYTES = {"run.json": 32 * 2**20, "metrics.csv": 256 * 2**20, "weights.pt": 512 * 2**20,
                    "log.txt": 8 * 2**20, "manifest.json": 2**20}
MAX_RATIO = 200  # unpacked / packed per member: beyond it, a zip bomb rather than text
MAX_RUNS = 200
MAX_NAME = 200
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_MEMBER = re.compile(r"runs/(?P<id>[A-Za-z0-9][A-Za-z0-9_-]{0,63})/(?P<file>run\.json|metrics\.csv|weights\.pt|log\.txt)")
_METRIC_COLUMNS = ["kind", "step", "epoch", *store.METRIC_COLUMNS]


# Runs of the course's experiments on real data, recorded with this project and shipped with it:
# one file per preset, <preset>.auglab.zip (how they were recorded: the README, "Recorded runs").
RECORDED_DIR = Path(__file__).resolve().parents[2] / "assets" / "recorded"


class TransferError(ValueError):
    """A run file that cannot be imported, or runs that cannot be exported; the message says why."""


@dataclass(frozen=True)
class ImportResult:
    added: list[str]  # run ids now in the store
    skipped: list[str]  # already in the store (same id): left as they were


# ============================================================================ export


def export_runs(run_ids: Iterable[str], *, weights: bool = False) -> bytes:
    """The ended runs `run_ids` as one zip (bytes); weights: include each run's trained weights."""
    ids = list(dict.fromkeys(run_ids))
    if not ids:
        raise TransferError(_("Pick at least one run to export."))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", json.dumps(
            {"format": FORMAT, "version": VERSION, "runs": ids, "written_by": versions.versions()}, indent=1))
        for run_id in ids:
            record = store.get_run(run_id)
            if not record.is_final:
                raise TransferError(_("Run “{name}” is {status}: only ended runs can be exported.").format(
                    name=record.name, status=record.status))
            folder = f"runs/{run_id}/"
            archive.writestr(folder + "run.json", json.dumps({
                "id": record.id, "name": record.name, "config": record.config, "status": record.status,
                "message": record.message, "device": record.device, "created": record.created,
                "started": record.started, "ended": record.ended, "summary": record.summary,
            }, indent=1))
            archive.writestr(folder + "metrics.csv", store.all_metrics(run_id).to_csv(index=False))
            log = record.folder / "log.txt"
            if log.is_file() and log.stat().st_size <= MAX_MEMBER_BYTES["log.txt"]:
                archive.write(log, folder + "log.txt")
            weights_file = record.folder / (record.summary.get("weights") or "weights.pt")
            if weights and record.summary.get("weights") and weights_file.is_file():
                archive.write(weights_file, folder + "weights.pt")
    return buffer.getvalue()


def export_name(names: Iterable[str]) -> str:
    """A file name for the exported runs: the run's name for one run, else "auglab-runs-N"."""
    names = list(names)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", names[0]).strip("-.")[:60] if len(names) == 1 else ""
    return (stem or f"auglab-runs-{len(names)}") + SUFFIX


# ============================================================================ import


def import_runs(data: bytes) -> ImportResult:
    """Add the runs of an exported file to this store; raises TransferError (store unchanged)."""
    runs = read_runs(data)
    skipped = [run_id for run_id in runs if store.has_run(run_id)]
    new = {run_id: parsed for run_id, parsed in runs.items() if run_id not in skipped}
    written = []
    try:
        for run_id, (record, unused, files) in new.items():
            folder = home() / "runs" / run_id
            if folder.exists() and any(folder.iterdir()):
                raise TransferError(_("A folder for run {run_id} exists already in {path}; nothing was imported.")
                                    .format(run_id=run_id, path=folder))
            folder.mkdir(parents=True, exist_ok=True)
            written.append(folder)
            for name, content in files.items():
                (folder / name).write_bytes(content)
        store.add_ended_runs([(record, rows) for record, rows, unused in new.values()])
    except BaseException:
        for folder in written:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    return ImportResult(list(new), skipped)


def read_runs(data: bytes) -> dict[str, tuple[store.RunRecord, pd.DataFrame, dict[str, bytes]]]:
    """The validated runs of a file: id -> (record, metric rows, files for its folder)."""
    if len(data) > MAX_FILE_BYTES:
        raise TransferError(_("The file is {size} MB; a run file may be at most {limit} MB.").format(
            size=len(data) // 2**20, limit=MAX_FILE_BYTES // 2**20))
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise TransferError(_("This is not a run file (a zip exported from the Compare page): {error}.")
                            .format(error=exc)) from None
    with archive:
        files = _check_members(members)
        manifest = _json(archive, "manifest.json", files)
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise TransferError(_("This zip is not a run file: its manifest.json does not say format “{format}”.")
                                .format(format=FORMAT))
        if manifest.get("version") != VERSION:
            raise TransferError(_("This run file has version {version}; this Augmentation Lab reads version {known}.")
                                .format(version=str(manifest.get("version"))[:20], known=VERSION))
        listed = manifest.get("runs")
        if not isinstance(listed, list) or not listed or not all(isinstance(i, str) for i in listed):
            raise TransferError(_("The run file's manifest lists no runs."))
        present = {m["id"] for m in files.values() if m}
        if set(listed) != present or len(listed) != len(set(listed)):
            raise TransferError(_("The run file's manifest does not match its contents."))
        if len(listed) > MAX_RUNS:
            raise TransferError(_("The run file holds {n} runs; at most {limit} can be imported at once.")
                                .format(n=len(listed), limit=MAX_RUNS))
        return {run_id: _read_run(archive, run_id, files) for run_id in listed}


def _check_members(members: list[zipfile.ZipInfo]) -> dict[str, dict[str, str] | None]:
    """name -> {"id", "file"} (None for the manifest), once every name and size is acceptable."""
    found: dict[str, dict[str, str] | None] = {}
    total = 0
    for info in members:
        if info.is_dir():
            continue
        name = info.filename
        match = _MEMBER.fullmatch(name)
        if name != "manifest.json" and match is None:
            raise TransferError(_("The run file holds an unexpected entry “{name}”; nothing was imported.")
                                .format(name=name[:80]))
        kind = "manifest.json" if match is None else match["file"]
        if name in found:
            raise TransferError(_("The run file holds “{name}” twice.").format(name=name[:80]))
        if info.file_size > MAX_MEMBER_BYTES[kind]:
            raise TransferError(_("“{name}” in the run file unpacks to {size} MB, more than {limit} MB.").format(
                name=name[:80], size=info.file_size // 2**20, limit=MAX_MEMBER_BYTES[kind] // 2**20))
        if info.file_size > 2**20 and info.file_size > MAX_RATIO * max(1, info.compress_size):
            raise TransferError(_("“{name}” in the run file is compressed {ratio:.0f} times: refused as a zip bomb.")
                                .format(name=name[:80], ratio=info.file_size / max(1, info.compress_size)))
        total += info.file_size
        if total > MAX_UNPACKED_BYTES:
            raise TransferError(_("The run file unpacks to more than {limit} MB.").format(
                limit=MAX_UNPACKED_BYTES // 2**20))
        found[name] = None if match is None else {"id": match["id"], "file": kind}
    if "manifest.json" not in found:
        raise TransferError(_("This zip is not a run file: it has no manifest.json."))
    return found


def _read(archive: zipfile.ZipFile, name: str) -> bytes:
    # read in bounded chunks: the sizes in the zip's directory were checked, but they are the
    # file's word, and a lying entry must not unpack past its limit
    limit = max(MAX_MEMBER_BYTES.values())
    out = bytearray()
    try:
        with archive.open(name) as f:
            while chunk := f.read(2**20):
                out += chunk
                if len(out) > limit:
                    raise TransferError(_("“{name}” in the run file unpacks past its stated size.").format(name=name))
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError) as exc:
        raise TransferError(_("“{name}” in the run file cannot be read: {error}.").format(name=name, error=exc)) from None
    return bytes(out)


def _json(archive: zipfile.ZipFile, name: str, files: Mapping[str, Any]) -> Any:
    if name not in files:
        raise TransferError(_("The run file lacks “{name}”.").format(name=name))
    try:
        return json.loads(_read(archive, name).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TransferError(_("“{name}” in the run file is not valid JSON: {error}.").format(name=name, error=exc)) from None


def _number(value: Any, what: str, *, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TransferError(_("In the run file, {what} is not a number.").format(what=what))
    return float(value)


def _text(value: Any, what: str, limit: int, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise TransferError(_("In the run file, {what} is not a text of at most {limit} characters.")
                            .format(what=what, limit=limit))
    return value


def _read_run(archive: zipfile.ZipFile, run_id: str, files: Mapping[str, Any]):
    folder = f"runs/{run_id}/"
    doc = _json(archive, folder + "run.json", files)
    if not isinstance(doc, dict) or doc.get("id") != run_id:
        raise TransferError(_("runs/{run_id}/run.json does not describe run {run_id}.").format(run_id=run_id))
    name = _text(doc.get("name"), _("the name of run {run_id}").format(run_id=run_id), MAX_NAME)
    if doc.get("status") not in store.FINAL_STATUSES:
        raise TransferError(_("Run “{name}” has status “{status}”: only ended runs can be imported.").format(
            name=name, status=str(doc.get("status"))[:20]))
    try:
        config = TrainConfig.from_dict(doc.get("config"))
    except (ConfigError, TypeError, ValueError, AttributeError) as exc:
        raise TransferError(_("The config of run “{name}” is not valid here: {error}").format(name=name, error=exc)) from None
    summary = doc.get("summary")
    if not isinstance(summary, dict):
        raise TransferError(_("The summary of run “{name}” is not a JSON object.").format(name=name))
    record = store.RunRecord(
        id=run_id, name=name, config=config.to_dict(), status=doc["status"],
        message=_text(doc.get("message"), _("the message of run “{name}”").format(name=name), 100_000, optional=True),
        device=_text(doc.get("device"), _("the device of run “{name}”").format(name=name), 500, optional=True),
        created=_number(doc.get("created"), _("the creation time of run “{name}”").format(name=name)),
        started=_number(doc.get("started"), _("the start time of run “{name}”").format(name=name), optional=True),
        ended=_number(doc.get("ended"), _("the end time of run “{name}”").format(name=name), optional=True),
        pid=None, host=None, stop_requested=False, summary=summary,
    )
    rows = _metrics(archive, folder + "metrics.csv", files, name)
    extra: dict[str, bytes] = {}
    if folder + "log.txt" in files:
        extra["log.txt"] = _read(archive, folder + "log.txt")
    if folder + "weights.pt" in files:
        extra["weights.pt"] = _check_weights(_read(archive, folder + "weights.pt"), config, summary, name)
        record = store.RunRecord(**{**record.__dict__, "summary": {**summary, "weights": "weights.pt"}})
    else:
        record = store.RunRecord(**{**record.__dict__, "summary": {k: v for k, v in summary.items() if k != "weights"}})
    return record, rows, extra


def _metrics(archive: zipfile.ZipFile, name: str, files: Mapping[str, Any], run_name: str) -> pd.DataFrame:
    if name not in files:
        raise TransferError(_("The run file lacks “{name}”.").format(name=name))
    try:
        rows = pd.read_csv(io.BytesIO(_read(archive, name)))
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise TransferError(_("The metrics of run “{name}” are not a readable CSV: {error}").format(
            name=run_name, error=exc)) from None
    if list(rows.columns) != _METRIC_COLUMNS:
        raise TransferError(_("The metrics of run “{name}” have the columns {columns}, not {expected}.").format(
            name=run_name, columns=", ".join(map(str, rows.columns))[:200], expected=", ".join(_METRIC_COLUMNS)))
    if not rows["kind"].isin(["step", "epoch"]).all():
        raise TransferError(_("The metrics of run “{name}” hold a row that is neither a step nor an evaluation.")
                            .format(name=run_name))
    numbers = rows[_METRIC_COLUMNS[1:]]
    if not all(pd.api.types.is_numeric_dtype(t) for t in numbers.dtypes) or rows[["step", "epoch"]].isna().any().any():
        raise TransferError(_("The metrics of run “{name}” hold values that are not numbers.").format(name=run_name))
    return rows


def _check_weights(data: bytes, config: TrainConfig, summary: Mapping[str, Any], run_name: str) -> bytes:
    """The weights, once they load safely (weights-only: no code runs) into the model the run's
    config and data build."""
    import torch

    from core.training.models import build_model

    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, RuntimeError, ...: whatever is not plain weights
        raise TransferError(_("The weights of run “{name}” are not a plain PyTorch state dict, so they were not "
                              "loaded: {error}").format(name=run_name, error=str(exc)[:300])) from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise TransferError(_("The weights of run “{name}” are not a state dict of tensors.").format(name=run_name))
    described = summary.get("data") if isinstance(summary.get("data"), dict) else {}
    try:
        model = build_model(config.model.name, in_channels=int(described["in_channels"]),
                            num_classes=len(described["classes"]), image_size=int(described["image_size"]),
                            **config.model.options)
        model.load_state_dict(state, strict=True)
    except Exception as exc:  # KeyError, TypeError, RuntimeError (shapes): not this run's model
        raise TransferError(_("The weights of run “{name}” do not fit the model its config builds: {error}").format(
            name=run_name, error=str(exc)[:300])) from None
    return data


# ============================================================================ recorded runs


@dataclass(frozen=True)
class Recorded:
    key: str  # the preset it recorded (core.runs.presets.PRESETS), the file's stem
    path: Path
    title: str  # the preset's title, English: shown through tr()
    runs: int  # how many runs the file holds


def recorded_runs(folder: Path | None = None) -> list[Recorded]:
    """The shipped recorded runs, one entry per file, in the presets' order; a file that is not a
    readable run file is left out (the import would say why)."""
    from core.runs.presets import PRESETS

    folder = RECORDED_DIR if folder is None else folder
    found = []
    for path in sorted(folder.glob("*" + SUFFIX)) if folder.is_dir() else []:
        key = path.name.removesuffix(SUFFIX)
        try:
            with zipfile.ZipFile(path) as archive:
                manifest = json.loads(archive.read("manifest.json"))
            count = len(manifest["runs"])
        except (OSError, KeyError, TypeError, ValueError, zipfile.BadZipFile):
            continue
        title = PRESETS[key].title if key in PRESETS else key
        found.append(Recorded(key, path, title, count))
    order = list(PRESETS)
    return sorted(found, key=lambda r: (order.index(r.key) if r.key in order else len(order), r.key))


def open_recorded(recorded: Recorded) -> ImportResult:
    """The recorded runs into this store (those already here are left as they are)."""
    return import_runs(recorded.path.read_bytes())
