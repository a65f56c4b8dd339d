"""Lesson links: a page, what it opens on, its language, and which controls students may change.

A teacher builds one on the Lab (a sample picture, a pipeline, a seed and the grid's size) or on
the Train page (a preset, its budget, seeds and data) and hands it to a class as a link and a QR
code; whoever opens it lands exactly there. Each control of a page is open, locked (shown, not
changeable) or hidden; which controls there are is declared once here, in `CONTROLS`.

The lock is a convenience for a classroom, not a security boundary: a student who edits the
link, or runs the app themselves, can change anything.

Everything read from a URL is validated like an upload (`read_link`): an unknown key, a value out
of range or too long is dropped with a message, that setting keeps its safe default, and nothing
else changes. A link longer than `MAX_LINK` is ignored as a whole.
"""
from __future__ import annotations

import base64
import binascii
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from urllib.parse import parse_qs, urlencode, urlsplit

from core.augment import AugmentError, Pipeline
from core.i18n import LANGUAGES, N_, _, tr

# A number input travels through JavaScript, whose integers are exact only up to 2**53.
MAX_SEED = 2**53 - 1
ROWS = (1, 4)  # the Lab grid's rows and columns, smallest and largest
COLS = (1, 6)
MAX_LINK = 8_000  # characters of query a link may carry; browsers and chat apps keep this much
MAX_VALUE = 4_000  # characters of one value (a pipeline of a dozen steps is ~1,000)
MAX_PRESET_SEEDS = 5  # as core.runs.presets.MAX_SEEDS, which is checked against it in the tests

PAGE_PATHS: dict[str, str] = {"lab": "", "train": "train", "compare": "compare"}  # the URL path of each page
# Keys Streamlit itself reads from a URL: never reported as unknown.
STREAMLIT_KEYS = frozenset({"embed", "embed_options"})
OPEN, LOCKED, HIDDEN = "open", "locked", "hidden"


@dataclass(frozen=True)
class Control:
    name: str  # in the link's lock= and hide= lists
    label: str  # English, marked with N_: shown through tr()
    lockable: bool = True  # False: open or hidden only (a tab: locking it would change nothing)


CONTROLS: dict[str, tuple[Control, ...]] = {
    "lab": (
        Control("picture", N_("Picture (sample and upload)")),
        Control("pipeline", N_("Pipeline (steps and their settings)")),
        Control("seed", N_("Seed and New samples")),
        Control("grid", N_("Rows and columns")),
        Control("mixing", N_("Mixing tab"), lockable=False),
        Control("imagenet", N_("ImageNet view tab"), lockable=False),
        Control("export", N_("Export tab"), lockable=False),
    ),
    "train": (
        Control("preset", N_("Preset choice (experiment, budget, seeds, data)")),
        Control("editor", N_("Config editor and its Launch"), lockable=False),
        Control("preset_launch", N_("The preset's launch button"), lockable=False),
    ),
}
# What each page reads from a link, besides lang, lock and hide.
PAGE_KEYS: dict[str, frozenset[str]] = {
    "lab": frozenset({"p", "seed", "sample", "rows", "cols"}),
    "train": frozenset({"preset", "budget", "seeds", "data", "run"}),
}
COMMON_KEYS = frozenset({"lang", "lock", "hide"})


@dataclass(frozen=True)
class Lesson:
    """What a link opens: a page and its settings (None: the page's own default)."""

    page: str = "lab"
    lang: str | None = None
    # the Lab
    sample: str | None = None
    pipeline: Pipeline | None = None
    seed: int | None = None
    rows: int | None = None
    cols: int | None = None
    # the Train page
    preset: str | None = None
    budget: str | None = None
    seeds: int | None = None
    data: str | None = None
    # controls (names from CONTROLS[page]) students may not change, and those not shown
    lock: frozenset[str] = field(default_factory=frozenset)
    hide: frozenset[str] = field(default_factory=frozenset)

    def state_of(self, control: str) -> str:
        return HIDDEN if control in self.hide else LOCKED if control in self.lock else OPEN

    def is_open(self, control: str) -> bool:
        return self.state_of(control) == OPEN

    def shown(self, control: str) -> bool:
        return control not in self.hide

    def with_controls(self, states: Mapping[str, str]) -> Lesson:
        """This lesson with each control open, locked or hidden as `states` says."""
        return replace(self, lock=frozenset(c for c, s in states.items() if s == LOCKED),
                       hide=frozenset(c for c, s in states.items() if s == HIDDEN))

    def query(self) -> dict[str, str]:
        """The link's parameters, in a stable order."""
        values: dict[str, str] = {}
        if self.pipeline is not None:
            values["p"] = pipeline_to_param(self.pipeline)
        for key in ("seed", "sample", "rows", "cols", "preset", "budget", "seeds", "data"):
            value = getattr(self, key)
            if value is not None:
                values[key] = str(value)
        order = [c.name for c in CONTROLS[self.page]]
        for key in ("lock", "hide"):
            names = sorted(getattr(self, key), key=lambda c: order.index(c) if c in order else len(order))
            if names:
                values[key] = ",".join(names)
        if self.lang is not None:
            values["lang"] = self.lang
        return values

    def url(self, base: str) -> str:
        """The link, on the app whose root URL is `base` (see app_root)."""
        root = base.rstrip("/")
        path = PAGE_PATHS[self.page]
        return f"{root}/{path}?{urlencode(self.query())}" if path else f"{root}/?{urlencode(self.query())}"


def app_root(url: str) -> str:
    """The app's root URL from a page's URL: without the query and the page's own path."""
    parts = urlsplit(url or "")
    path = parts.path.rstrip("/")
    last = path.rsplit("/", 1)[-1]
    if last in PAGE_PATHS.values() and last:
        path = path[: -len(last)].rstrip("/")
    if not parts.scheme:
        return path
    return f"{parts.scheme}://{parts.netloc}{path}"


# ---- the pipeline in a link: compact JSON in URL-safe base64 (no padding) ----------------------


def pipeline_to_param(pipeline: Pipeline) -> str:
    text = json.dumps(pipeline.to_list(), separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def pipeline_from_param(value: str) -> Pipeline:
    """Raises AugmentError with a readable message for anything that is not a valid pipeline."""
    try:
        text = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    except (binascii.Error, ValueError):
        raise AugmentError(_("the link's pipeline is damaged (not URL-safe base64)")) from None
    try:
        items = json.loads(text)
    except ValueError as e:
        raise AugmentError(_("the link's pipeline is not valid JSON ({e})").format(e=e)) from None
    return Pipeline.from_list(items)


def seed_from_param(value: str) -> int:
    if not value.isdigit() or int(value) > MAX_SEED:
        raise AugmentError(_("the link's seed must be a non-negative whole number, got {value!r}").format(value=value[:40]))
    return int(value)


def pipeline_param_from_link(text: str) -> str:
    """The `p` value of a lab link (the whole URL or just the value)."""
    text = text.strip()
    if "?" in text or text.startswith(("http://", "https://")):
        values = parse_qs(urlsplit(text).query).get("p")
        if not values:
            raise AugmentError(_("the link carries no pipeline (no p=… in it)"))
        return values[0]
    return text.removeprefix("p=")


# ---- reading a link ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    kind: str  # "error": a setting was refused; "warning": something was ignored
    text: str


def _whole(value: str, low: int, high: int, what: str) -> int:
    if not value.isdigit() or not low <= int(value) <= high:
        raise ValueError(_("{what} must be a whole number from {low} to {high}, got {value!r}").format(
            what=what, low=low, high=high, value=value[:40]))
    return int(value)


def _controls(page: str, value: str, key: str) -> tuple[frozenset[str], list[str]]:
    known = {c.name: c for c in CONTROLS[page]}
    names = [n for n in value.split(",") if n]
    bad = [n for n in names if n not in known or (key == "lock" and not known[n].lockable)]
    return frozenset(n for n in names if n not in bad), bad


def read_link(page: str, params: Mapping[str, str]) -> tuple[Lesson, list[Problem]]:
    """The lesson a page's URL parameters describe, and what was wrong with them.

    Every value is checked; one that is unknown, out of range or too long is left out (its setting
    keeps the page's default) and named in a Problem, in the session's language.
    """
    total = sum(len(k) + len(v) + 2 for k, v in params.items())
    if total > MAX_LINK:
        return Lesson(page=page), [Problem("error", _(
            "The link is too long ({length} characters; at most {limit}), so none of it was used."
        ).format(length=total, limit=MAX_LINK))]
    problems: list[Problem] = []
    known = COMMON_KEYS | PAGE_KEYS[page] | STREAMLIT_KEYS
    unknown = sorted(k for k in params if k not in known)
    if unknown:
        problems.append(Problem("warning", _("The link has settings this page does not know ({keys}); they were ignored.").format(
            keys=", ".join(k[:30] for k in unknown[:5]) + ("…" if len(unknown) > 5 else ""))))
    values: dict[str, object] = {}
    for key, raw in params.items():
        if key in unknown or key in STREAMLIT_KEYS:
            continue
        if len(raw) > MAX_VALUE:
            problems.append(Problem("error", _("The link's {key} is too long ({length} characters; at most {limit}): ignored.").format(
                key=key, length=len(raw), limit=MAX_VALUE)))
            continue
        try:
            values.update(_read_value(page, key, raw, values))
        except (AugmentError, ValueError) as e:
            problems.append(Problem("error", _read_failure(key, e)))
    lesson = Lesson(page=page, **values)
    if lesson.budget is not None and lesson.preset is not None:
        from core.runs.presets import budgets

        offered = [*budgets(lesson.preset, "cpu"), *budgets(lesson.preset, "cuda")]
        if lesson.budget not in offered:
            problems.append(Problem("error", _("The link's budget {value!r} is not one of this preset's ({known}): the first is used.").format(
                value=lesson.budget[:40], known=", ".join(dict.fromkeys(offered)))))
            lesson = replace(lesson, budget=None)
    return lesson, problems


def _read_value(page: str, key: str, raw: str, so_far: Mapping[str, object]) -> dict[str, object]:
    if key == "lang":  # an unknown one is reported where the session's language is chosen (pages/ui/state.py)
        return {"lang": raw} if raw in LANGUAGES else {}
    if key in ("lock", "hide"):
        names, bad = _controls(page, raw, key)
        if bad:
            choices = [c.name for c in CONTROLS[page] if key == "hide" or c.lockable]
            raise ValueError(_("{key}: unknown controls ({names}); this page has {known}").format(
                key=key, names=", ".join(b[:30] for b in bad[:5]), known=", ".join(choices) or "—"))
        return {key: names}
    if key == "p":
        return {"pipeline": pipeline_from_param(raw)}
    if key == "seed":
        return {"seed": seed_from_param(raw)}
    if key == "sample":
        from core.data.samples import SAMPLES

        if raw not in SAMPLES:
            raise ValueError(_("unknown sample picture {value!r}; known: {known}").format(
                value=raw[:40], known=", ".join(tr(s) for s in SAMPLES)))
        return {"sample": raw}
    if key == "rows":
        return {"rows": _whole(raw, *ROWS, what=_("rows"))}
    if key == "cols":
        return {"cols": _whole(raw, *COLS, what=_("columns"))}
    if key == "preset":
        from core.runs.presets import PRESETS

        if raw not in PRESETS:
            raise ValueError(_("unknown preset {value!r}").format(value=raw[:40]))
        return {"preset": raw}
    if key == "budget":
        return {"budget": raw}  # checked against the preset once both are read
    if key == "seeds":
        return {"seeds": _whole(raw, 1, MAX_PRESET_SEEDS, what=_("seeds"))}
    if key == "data":
        return {"data": raw}  # whether this machine has it is the page's to say
    return {}  # a key the page reads itself (run, runs)


def _read_failure(key: str, e: Exception) -> str:
    if key == "p":
        return _("The pipeline in the link could not be used, so the default pipeline is shown: {reason}").format(reason=e)
    if key == "seed":
        return _("The seed in the link could not be used, so seed 0 is shown: {reason}").format(reason=e)
    return _("The link's {key} could not be used: {reason}. The page's default is kept.").format(key=key, reason=e)


# ---- the QR code -------------------------------------------------------------------------------


def qr_png(text: str, scale: int = 12) -> bytes:
    """A QR code of `text` as PNG, `scale` pixels a module (about 600 px for a link: a projector's)."""
    import segno

    buffer = io.BytesIO()
    segno.make(text, error="m", micro=False).save(buffer, kind="png", scale=scale, border=4)
    return buffer.getvalue()


def qr_svg(text: str) -> bytes:
    import segno

    buffer = io.BytesIO()
    segno.make(text, error="m", micro=False).save(buffer, kind="svg", scale=10, border=4)
    return buffer.getvalue()
