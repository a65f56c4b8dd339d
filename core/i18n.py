"""Every user-visible string in one catalog: gettext messages, English as the message id.

    from core.i18n import _
    st.error(_("Could not read {name}: {reason}.").format(name=file.name, reason=reason))

Call sites hold the English text wrapped in `_`; a translation is one file, the catalog
core/locale/<language>/LC_MESSAGES/messages.po, and touches no call site. Text declared once in
data (a parameter's label and help, an op's description, a dataset's label) stays plain English
in its declaration and is translated where it is shown (`tr(param.help)`); `declared_strings`
lists it, so that `python -m core.i18n extract` puts it in the template beside the strings it
finds in the code (Babel's extractor, keywords `_` and `N_`).

Placeholders are named ({name}), never positional, so that a translation may reorder them.
The language is the caller's: the UI registers where the session keeps it (`use_language_source`),
the CLI and training processes read $AUGLAB_LANG, everything else gets English.
"""
from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from pathlib import Path

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DOMAIN = "messages"
DEFAULT = "en"
LANGUAGE_ENV = "AUGLAB_LANG"
# language code -> its own name, as the language picker shows it
LANGUAGES = {"en": "English", "zh": "中文"}

_source: Callable[[], str | None] | None = None


def use_language_source(source: Callable[[], str | None] | None) -> None:
    """Where the current language comes from (the UI: the session's choice); None: $AUGLAB_LANG."""
    global _source
    _source = source


def language() -> str:
    chosen = None
    if _source is not None:
        try:
            chosen = _source()
        except Exception:  # no session (a background thread): fall back, never fail a message
            chosen = None
    chosen = chosen or os.environ.get(LANGUAGE_ENV) or DEFAULT
    return chosen if chosen in LANGUAGES else DEFAULT


@functools.cache
def _catalog(lang: str) -> dict[str, str]:
    """msgid -> translation of one language's .po file (read with Babel; no compile step)."""
    path = LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"
    if lang == DEFAULT or not path.exists():
        return {}
    from babel.messages.pofile import read_po

    with path.open("rb") as f:
        catalog = read_po(f, locale=lang)
    return {m.id: m.string for m in catalog if m.id and isinstance(m.id, str) and m.string and not m.fuzzy}


def catalog_text(lang: str, message: str) -> str:
    """`message` in the language `lang` (not the current one): for reading what another process wrote."""
    return _catalog(lang).get(message, message)


def _(message: str) -> str:
    """`message` in the current language; English (the message itself) where there is no translation."""
    return _catalog(language()).get(message, message) if message else message


def tr(text: str) -> str:
    """Translate text that is not a literal here: declared in data (a Param's help, an op's label,
    a dataset's label) or marked with N_ where it was written. Literals use `_`, which Babel finds."""
    return _catalog(language()).get(text, text) if text else text


def N_(message: str) -> str:
    """Marks a string for the catalog without translating it now: it is translated where shown."""
    return message


def reload() -> None:
    """Forget the catalogs read so far (after editing a .po file)."""
    _catalog.cache_clear()


def declared_strings() -> Iterator[tuple[str, str]]:
    """(text, where) for every user-visible string declared in data rather than code."""
    from core.augment import REGISTRY
    from core.augment.mixing import MIXERS
    from core.data import DATASETS, PATH_PREFIXES
    from core.training.config import config_params
    from core.training.models import MODELS

    for op in REGISTRY.values():
        yield from ((t, f"op {op.name}") for t in (op.label, op.help))
        for p in op.params:
            yield p.help, f"op {op.name}.{p.name}"
    for mixer in MIXERS.values():
        yield from ((t, f"mixer {mixer.name}") for t in (mixer.label, mixer.help))
    for key, p in config_params().items():
        yield from ((t, f"config {key}") for t in (p.title, p.help, p.none_means or ""))
    for name, info in MODELS.items():
        yield from ((t, f"model {name}") for t in (info.label, info.help))
        for option in info.options:
            yield option.help, f"model {name}.{option.name}"
    for name, info in DATASETS.items():
        yield from ((t, f"dataset {name}") for t in (info.label, info.help))
    for prefix, text in PATH_PREFIXES.items():
        yield text, f"dataset prefix {prefix}"


# ---- the catalog's upkeep: python -m core.i18n extract | update ------------------------------

SOURCES = ("app.py", "pages", "core")  # where the code's strings are, relative to the project root
ROOT = LOCALE_DIR.parent.parent


def template():
    """The catalog template: every `_`/`N_` string of the code, then the declared ones."""
    from babel.messages.catalog import Catalog
    from babel.messages.extract import extract_from_dir, extract_from_file

    catalog = Catalog(project="Augmentation Lab", fuzzy=False)
    keywords = {"_": None, "N_": None}
    for source in SOURCES:
        path = ROOT / source
        found = (
            extract_from_dir(str(path), method_map=[("**.py", "python")], keywords=keywords)
            if path.is_dir()
            else ((source, *m) for m in extract_from_file("python", str(path), keywords=keywords))
        )
        for filename, lineno, message, comments, _context in found:
            where = f"{source}/{filename}" if path.is_dir() else filename
            catalog.add(message, locations=[(where, lineno)], auto_comments=comments)
    for text, where in declared_strings():
        if text:
            catalog.add(text, auto_comments=[where])
    return catalog


def write_template() -> Path:
    from babel.messages.pofile import write_po

    path = LOCALE_DIR / f"{DOMAIN}.pot"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        write_po(f, template(), width=100, sort_output=True)
    return path


def update_catalogs() -> list[Path]:
    """Merge the template into every language's .po: new strings arrive untranslated, translations stay."""
    from babel.messages.catalog import Catalog
    from babel.messages.pofile import read_po, write_po

    pot = template()
    written = []
    for lang in LANGUAGES:
        if lang == DEFAULT:
            continue
        path = LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            with path.open("rb") as f:
                catalog = read_po(f, locale=lang)
        else:
            catalog = Catalog(locale=lang, project="Augmentation Lab", fuzzy=False)
        catalog.update(pot, no_fuzzy_matching=True)
        with path.open("wb") as f:
            write_po(f, catalog, width=100, sort_output=True, ignore_obsolete=True)
        written.append(path)
    reload()
    return written


if __name__ == "__main__":
    import sys

    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "extract":
        print(write_template())
    elif command == "update":
        write_template()
        print("\n".join(str(p) for p in update_catalogs()))
    else:
        print("usage: python -m core.i18n extract | update", file=sys.stderr)
        sys.exit(2)
