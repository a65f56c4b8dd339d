"""The Train page's real datasets: where each kind comes from, downloads, "use this dataset as".

Drawn in the Data tab (pages/train.py calls `sources_panel`, `dataset_chosen` and the small
helpers below). Everything it knows comes from core.data.sources; a failure of any part is shown as
an error in place and changes nothing else on the page.
"""
from __future__ import annotations

import hashlib
import os
import time

import streamlit as st

from core.data import DatasetError, sources
from core.data.uploads import Upload, dataset_title
from core.i18n import _, tr
from pages.ui.messages import flash
from pages.ui.state import init_state

state = st.session_state

# The editor's widgets this module reads and sets (Field.widget_key in pages/train.py).
DATASET_KEY = "tr_data.dataset"
SUBSET_KEY = "tr_data.subset"
VAL_RATIO_KEY = "tr_data.val_ratio"
BATCH_KEY = "tr_run.batch_size"
EPOCHS_KEY = "tr_run.epochs"

# This module's session state is declared with every page's in pages/ui/state.py (STATE).
# Icons and an example path: the same in every language, kept out of the messages.
MISSING_ICON, PRESENT_ICON, BUDGET_ICON = ":material/cancel:", ":material/check_circle:", ":material/tune:"
PATH_EXAMPLE = "/data/cifar10.zip"
SIZE_STATE = "tr_dl_size."  # + kind: ("size", bytes or None) or ("error", message) from asking the server


def _error_text(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, DatasetError) else f"{type(exc).__name__}: {exc}"


# ============================================================================ the dataset list


def dataset_options(options: list[str]) -> list[str]:
    """The dataset list with the zips and folders registered as a kind or pointed to this session."""
    init_state(only_missing=True)
    extra = list(state["tr_pointed"])
    try:
        extra += [d for k in sources.KINDS for d in sources.registered(k)]
    except Exception:  # an unreadable store must not take the list away
        pass
    return options + [d for d in dict.fromkeys(extra) if d not in options and sources.dataset_present(d)]


def label(name: str, upload: Upload | None) -> str:
    """How a zip or folder reads in the dataset list: its own name, and the kind it is used as."""
    try:
        kind = sources.registered_kind(name)
    except Exception:
        kind = None
    as_kind = _(" · used as {label}").format(label=tr(sources.KINDS[kind].label)) if kind else ""
    if upload is not None:
        return _("Upload: {summary}").format(summary=upload.summary) + as_kind
    if name.startswith(("zip:", "folder:")):
        source = sources.describe_source(name)  # "your zip cifar10.zip"
        return f"{source[:1].upper()}{source[1:]}{as_kind}"
    return name


# ============================================================================ a budget for the dataset's size


def dataset_chosen(dataset: str, *, new: bool = False) -> None:
    """Call when a dataset was selected, uploaded or pointed to (from a callback, before the widgets
    are drawn): a small dataset gets enough steps (core.data.sources.suggest_budget), said in a message.
    new: it was just uploaded; say so if its class names made it a kind's source."""
    init_state(only_missing=True)
    if new:
        try:
            kind = sources.registered_kind(dataset)
        except Exception:
            kind = None
        if kind is not None:
            flash("info", _(
                "Recognised as {label} by its class names: the presets for {label} train on it "
                "now (Real datasets, below, can change that)."
            ).format(
                label=tr(sources.KINDS[kind].label),
            ))
    try:
        previous = state["tr_budget"]
        if previous and (state.get(BATCH_KEY), state.get(EPOCHS_KEY)) == tuple(previous["after"]):
            state[BATCH_KEY], state[EPOCHS_KEY] = previous["before"]  # untouched since: back to what it was
        state["tr_budget"] = None
        subset = state.get(SUBSET_KEY, 1.0)
        n = sources.train_size(dataset, subset=None if subset >= 1 else subset, val_ratio=state.get(VAL_RATIO_KEY, 0.2))
        if n is None or BATCH_KEY not in state or EPOCHS_KEY not in state:
            return
        before = (int(state[BATCH_KEY]), int(state[EPOCHS_KEY]))
        batch, epochs, note = sources.suggest_budget(n, *before)
        if not note:
            return
        state[BATCH_KEY], state[EPOCHS_KEY] = batch, epochs
        state["tr_budget"] = {"dataset": dataset, "before": before, "after": (batch, epochs), "note": note}
        flash("info", _("{note} (Run tab.)").format(note=note))
    except Exception as exc:  # the dataset is chosen all the same
        flash("warning", _(
            "Could not size the training budget for this dataset ({error_text}); the Run tab "
            "keeps its values."
        ).format(
            error_text=_error_text(exc),
        ))


def on_dataset_selected() -> None:
    """on_change of the dataset list."""
    dataset_chosen(state[DATASET_KEY])


def budget_note(dataset: str) -> None:
    """The budget chosen for the selected dataset, while it is still the one in the Run tab."""
    chosen = state.get("tr_budget")
    if chosen and chosen["dataset"] == dataset and (state.get(BATCH_KEY), state.get(EPOCHS_KEY)) == tuple(chosen["after"]):
        st.caption(f"{BUDGET_ICON} {chosen['note']}")


# ============================================================================ the panel


def sources_panel() -> None:
    """Where CIFAR-10, MNIST, Fashion-MNIST and photos come from here, and how to get the missing ones."""
    init_state(only_missing=True)
    with st.expander(_("Real datasets for the presets: where they come from"), icon=":material/database:"):
        st.caption(
            _(
                "The presets train on these when they are here (torchvision's files first, then "
                "a zip or folder used as that kind, then an embedded stand-in), and on the "
                "generated shapes otherwise."
            )
        )
        for key, kind in sources.KINDS.items():
            try:
                _kind_row(key, kind)
            except Exception as exc:  # one kind failing leaves the others and the page alone
                st.error(f"{tr(kind.label)}: {_error_text(exc)}")
        st.divider()
        try:
            _use_as_choice(state.get(DATASET_KEY, ""))
        except Exception as exc:
            st.error(_("Could not read which kind this dataset is used as: {error_text}").format(error_text=_error_text(exc)))
        _point_box()


def _kind_row(key: str, kind: sources.Kind) -> None:
    found = sources.resolve(key)
    if found is None:
        st.markdown(f"{MISSING_ICON} " + _("**{label}**: missing").format(label=tr(kind.label)))
        st.caption(tr(kind.how_to_get))
    else:
        st.markdown(f"{PRESENT_ICON} " + _("**{label}**: {source} (`{dataset}`)").format(
            label=tr(kind.label),
            source=found.source,
            dataset=found.dataset,
        ))
    if kind.torchvision is not None and (found is None or found.source != _("torchvision files")):
        _download_controls(key, kind)


def _check_size(key: str) -> None:
    try:
        state[SIZE_STATE + key] = ("size", sources.download_size(key))
    except Exception as exc:
        state[SIZE_STATE + key] = ("error", _error_text(exc))


def _download_controls(key: str, kind: sources.Kind) -> None:
    # Asking the server happens on request, not on every page run, so an offline page never waits
    # on the network; a configured mirror ($AUGLAB_DOWNLOAD_BASE) is asked at once.
    if SIZE_STATE + key not in state and os.environ.get(sources.DOWNLOAD_BASE_ENV):
        _check_size(key)
    checked = state.get(SIZE_STATE + key)
    if checked is None:
        st.button(_("Check the {label} download").format(label=tr(kind.label)), key=f"tr-dl-check-{key}", on_click=_check_size, args=(key,),
                  icon=":material/cloud_download:", help=_("Asks the server how large torchvision's files are."))
        return
    if checked[0] == "error":
        st.warning(checked[1], icon=":material/cloud_off:")
        st.button(_("Try again"), key=f"tr-dl-check-{key}", on_click=_check_size, args=(key,), icon=":material/refresh:")
        return
    size = checked[1]
    shown = _("{megabytes:,.1f} MB").format(megabytes=size / 1e6) if size is not None else _("size unknown")
    if st.button(_("Download {label} ({size})").format(label=tr(kind.label), size=shown), key=f"tr-dl-{key}", icon=":material/download:",
                 help=_(
                     "torchvision's own files, checked against torchvision's checksums and unpacked "
                     "in the data folder; the page waits until it is done."
                 )):
        _download(key, kind)


def _download(key: str, kind: sources.Kind) -> None:
    kind_label = tr(kind.label)
    bar = st.progress(0.0, text=_("Downloading {label} ...").format(label=kind_label))
    last = [0.0]

    def progress(done: int, total: int | None) -> None:
        now = time.monotonic()
        if now - last[0] < 0.25 and done != total:
            return  # a bar update a quarter of a second is smooth; one per chunk floods the browser
        last[0] = now
        text = (_("Downloading {label}: {done:,.1f} of {total:,.1f} MB").format(label=kind_label, done=done / 1e6, total=total / 1e6)
                if total else _("Downloading {label}: {done:,.1f} MB").format(label=kind_label, done=done / 1e6))
        bar.progress(min(1.0, done / total) if total else 0.0, text=text)

    try:
        folder = sources.download(key, progress)
    except Exception as exc:
        bar.empty()
        st.error(_("{label} was not downloaded: {error_text}").format(label=kind_label, error_text=_error_text(exc)), icon=":material/error:")
        return
    bar.progress(1.0, text=_("{label} downloaded").format(label=kind_label))
    flash("success", _(
        "{label} downloaded and unpacked into {folder}; the presets and the dataset list "
        "use it now."
    ).format(
        label=kind_label,
        folder=folder,
    ))
    st.rerun()


# ---- "use this dataset as" ----------------------------------------------------------------------


def _use_as_key(dataset: str) -> str:
    return "tr_use_as_" + hashlib.sha256(dataset.encode()).hexdigest()[:12]


def _use_as_choice(dataset: str) -> None:
    if not dataset.startswith(("zip:", "folder:")):
        st.caption(_(
            "Select an uploaded zip (or a folder) above to choose which kind of dataset it "
            "is."
        ))
        return
    key = _use_as_key(dataset)
    state[key] = sources.registered_kind(dataset) or ""  # the registry is the truth, whatever the widget held
    st.selectbox(
        _("Use {dataset_title} as").format(dataset_title=dataset_title(dataset)), ["", *sources.KINDS], key=key,
        format_func=lambda k: tr(sources.KINDS[k].label) if k else _("none of these: just my own dataset"),
        on_change=_use_as, args=(dataset, key),
        help=_(
            "The presets written for that kind then train on this dataset (unless "
            "torchvision's files are here). Remembered in the data folder."
        ),
    )


def _use_as(dataset: str, key: str) -> None:
    chosen = state[key]
    try:
        current = sources.registered_kind(dataset)
        if current and current != chosen:
            sources.unregister(current, dataset)
        if chosen:
            sources.register(chosen, dataset)
    except Exception as exc:
        flash("error", _("Not changed: {error_text}").format(error_text=_error_text(exc)))
        return
    name = dataset_title(dataset)
    if chosen:
        flash("success", _("{name} is used as {label}: the presets for it train on it now.").format(
            name=name,
            label=tr(sources.KINDS[chosen].label),
        ))
    else:
        flash("info", _("{name} is no longer used as {label}.").format(name=name, label=tr(sources.KINDS[current].label)) if current else _("{name} is your own dataset.").format(name=name))


# ---- a zip or folder on this machine -------------------------------------------------------------


def _point_box() -> None:
    cols = st.columns([3, 1], vertical_alignment="bottom")
    cols[0].text_input(
        _("Or use a zip or folder on this machine"), key="tr_point_path", placeholder=PATH_EXAMPLE,
        help=_(
            "A zip or folder of class folders, read where it is (not copied). Recognised by "
            "its class names (CIFAR-10's airplane ... truck) or chosen above once selected."
        ),
    )
    cols[1].button(_("Use it"), key="tr-point", on_click=_point, icon=":material/folder_open:")


def _point() -> None:
    path = state.get("tr_point_path", "").strip()
    if not path:
        flash("warning", _("Type the path of a zip or folder first."))
        return
    try:
        pointed = sources.point_to(path)
    except Exception as exc:
        flash("error", _(
            "{path} cannot be used as a dataset: {error_text} The selected dataset is "
            "unchanged."
        ).format(
            path=path,
            error_text=_error_text(exc),
        ))
        return
    overview = pointed.overview
    state["tr_pointed"] = [*dict.fromkeys([*state["tr_pointed"], pointed.dataset])]
    state[DATASET_KEY] = pointed.dataset
    split = (
        _("{n_train:,} train / {n_test:,} test images").format(n_train=overview.train_files, n_test=overview.test_files)
        if overview.split
        else _("{n_train:,} images (a test split is held out)").format(n_train=overview.train_files)
    )
    kind = (
        _(" Recognised as {label} by its class names: the presets for it train on it now.").format(
            label=tr(sources.KINDS[pointed.kind].label))
        if pointed.kind else ""
    )
    flash("success", _("Selected {path}: {n_classes} classes, {split}, about {typical_size} px.{kind}").format(
        path=pointed.dataset.partition(':')[2],
        n_classes=len(overview.classes),
        split=split,
        typical_size=overview.typical_size,
        kind=kind,
    ))
    dataset_chosen(pointed.dataset)
