"""One vocabulary for every value a user can set: augmentation parameters, model options, config fields.

A `Param` says what a value is (its kind), what it may be (range, step, choices, None or not), what
it starts as, and what it means (label, unit, help). Everything around a value reads it from there:
validation (`Param.validate`, with the declaring module's own error type), the page's widget, the
command line's flag and help, the config's JSON schema, the code export and, later, translation.

    Param("p", "float", 0.5, low=0.0, high=1.0, step=0.05, help="chance per image")
    Param("lr", "float", 0.05, low=0.0, low_open=True, high=100.0, label="Peak learning rate")

Kinds: "float", "int", "bool", "choice", "text", "float_range" / "int_range" (a pair lo <= hi),
"float_list" / "int_list" (a list of numbers, each in range), "object" (a JSON value its owner
checks: model options, the augmentation pipeline).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from core.i18n import _, tr

KINDS = ("float", "int", "bool", "choice", "text", "float_range", "int_range", "float_list", "int_list", "object")


class ParamError(ValueError):
    """A value that does not fit its declaration; the message names it and says what it may be."""


@dataclass(frozen=True)
class Param:
    name: str
    kind: str
    default: Any
    low: float | None = None
    high: float | None = None
    step: float | None = None
    choices: tuple = ()
    help: str = ""
    label: str = ""  # the widget's label; the name when empty
    unit: str = ""  # shown after the label: "px", "epochs"
    optional: bool = False  # None is allowed: "not set", which `none_means` explains
    none_means: str = ""
    low_open: bool = False  # the value must be above `low`, not equal to it
    high_open: bool = False
    max_len: int | None = None  # the list kinds
    widget: str = ""  # a hint for the page: "slider", or a widget of the page's own ("dataset", "run", ...)
    flag: str = ""  # a short command-line flag besides --section.name, e.g. "lr" for --lr

    def __post_init__(self) -> None:
        assert self.kind in KINDS, f"{self.name}: unknown parameter kind {self.kind!r}"
        assert self.kind != "choice" or self.choices, f"{self.name}: a choice needs its choices"

    @property
    def title(self) -> str:
        """The label with its unit: 'Image size (px)'."""
        label = self.label or self.name
        return f"{label} ({self.unit})" if self.unit else label

    @property
    def numeric(self) -> bool:
        return self.kind in ("float", "int", "float_range", "int_range", "float_list", "int_list")

    @property
    def integer(self) -> bool:
        return self.kind.startswith("int")

    def closed_range(self) -> tuple[float | None, float | None]:
        """(low, high) for a slider, which cannot leave out its ends: an open end moves in by a step."""
        low = self.low + self.step if self.low_open and self.low is not None and self.step else self.low
        high = self.high - self.step if self.high_open and self.high is not None and self.step else self.high
        return low, high

    def named(self, name: str) -> Param:
        return replace(self, name=name)

    # ---- validation --------------------------------------------------------------------------

    def validate(self, value: Any, where: str | None = None, error: type[ValueError] = ParamError) -> Any:
        """`value` in canonical form (ints as int, ranges as tuples), or `error` saying what is wrong."""
        where = where or self.name
        if value is None:
            if self.optional:
                return None
            raise error(_("{where} must be set, got None").format(where=where))
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise error(_("{where} must be true or false, got {value!r}").format(where=where, value=value))
            return value
        if self.kind == "choice":
            if value not in self.choices:
                raise error(
                    _("{where} must be one of {choices}, got {value!r}").format(
                        where=where, choices=", ".join(map(str, self.choices)), value=value
                    )
                )
            return value
        if self.kind == "text":
            if not isinstance(value, str):
                raise error(_("{where} must be a string, got {value!r}").format(where=where, value=value))
            return value
        if self.kind == "object":
            return value  # its owner checks it (model options, the augmentation pipeline)
        if self.kind in ("float", "int"):
            return self._number(value, where, error)
        if self.kind in ("float_range", "int_range"):
            if not isinstance(value, (list, tuple)) or len(value) != 2:
                raise error(_("{where} must be a pair [low, high], got {value!r}").format(where=where, value=value))
            lo, hi = (self._number(v, where, error) for v in value)
            if lo > hi:
                raise error(
                    _("{where}: the first value ({lo}) must not exceed the second ({hi})").format(where=where, lo=lo, hi=hi)
                )
            return (lo, hi)
        # the list kinds
        if not isinstance(value, (list, tuple)):
            message = (
                _("{where} must be a list of whole numbers, got {value!r}")
                if self.integer
                else _("{where} must be a list of numbers, got {value!r}")
            )
            raise error(message.format(where=where, value=value))
        if self.max_len is not None and len(value) > self.max_len:
            raise error(
                _("{where} may hold at most {max_len} numbers, got {count}").format(
                    where=where, max_len=self.max_len, count=len(value)
                )
            )
        return [self._number(v, f"{where}[{i}]", error) for i, v in enumerate(value)]

    def _number(self, value: Any, where: str, error: type[ValueError]) -> int | float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise error(_("{where} must be a number, got {value!r}").format(where=where, value=value))
        if not math.isfinite(value):
            raise error(_("{where} must be a finite number, got {value!r}").format(where=where, value=value))
        if self.integer:
            if float(value) != int(value):
                raise error(_("{where} must be a whole number, got {value!r}").format(where=where, value=value))
            value = int(value)
        else:
            value = float(value)
        if not self.in_range(value):
            raise error(
                _("{where} = {value!r} is out of range: it must be {range}").format(
                    where=where, value=value, range=self.range_text()
                )
            )
        return value

    def in_range(self, value: float) -> bool:
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return not (self.high is not None and (value > self.high or (self.high_open and value == self.high)))

    def range_text(self) -> str:
        """What a number may be, in words: 'in [0, 1)', '1..10000', '>= 0', 'a positive number'."""
        lo, hi = self.low, self.high
        if lo is None and hi is None:
            return _("any number")
        if hi is None:
            if lo == 0 and self.low_open:
                return _("a positive number")
            return f"{'>' if self.low_open else '>='} {_num(lo)}"
        if lo is None:
            return f"{'<' if self.high_open else '<='} {_num(hi)}"
        if self.integer and not (self.low_open or self.high_open):
            return f"{_num(lo)}..{_num(hi)}"
        return _("in {interval}").format(
            interval=f"{'(' if self.low_open else '['}{_num(lo)}, {_num(hi)}{')' if self.high_open else ']'}"
        )

    # ---- what other tools read ---------------------------------------------------------------

    def describe(self) -> str:
        """One line for command-line help and documentation: the help, the range, the default."""
        parts = [tr(self.help).rstrip(".") + "." if self.help else ""]
        if self.kind == "choice":
            parts.append(_("One of {choices}.").format(choices=", ".join(map(str, self.choices))))
        elif self.numeric and (self.low is not None or self.high is not None):
            parts.append(_("Range: {range}.").format(range=self.range_text()))
        if self.optional and self.none_means:
            parts.append(_("None: {none_means}.").format(none_means=tr(self.none_means)))
        if self.kind != "object":
            parts.append(_("Default: {default}.").format(default=_shown(self.default)))
        return " ".join(p for p in parts if p)

    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema (draft 2020-12) of one value."""
        number = "integer" if self.integer else "number"
        schema: dict[str, Any]
        if self.kind == "bool":
            schema = {"type": "boolean"}
        elif self.kind == "choice":
            schema = {"enum": list(self.choices)}
        elif self.kind == "text":
            schema = {"type": "string"}
        elif self.kind == "object":
            schema = {"type": "object"}
        else:
            item: dict[str, Any] = {"type": number}
            if self.low is not None:
                item["exclusiveMinimum" if self.low_open else "minimum"] = self.low
            if self.high is not None:
                item["exclusiveMaximum" if self.high_open else "maximum"] = self.high
            if self.kind in ("float", "int"):
                schema = item
            elif self.kind.endswith("_range"):
                schema = {"type": "array", "items": item, "minItems": 2, "maxItems": 2}
            else:
                schema = {"type": "array", "items": item, **({"maxItems": self.max_len} if self.max_len else {})}
        if self.optional:
            schema = {"anyOf": [schema, {"type": "null"}]}
        schema.update({"title": self.title, "description": self.help, "default": _plain(self.default)})
        return schema


def _num(x: float) -> str:
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e15:
        return f"{int(x):,}".replace(",", "_") if abs(x) >= 1e5 else str(int(x))
    return f"{x:g}" if isinstance(x, float) else str(x)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _shown(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(_num(v) if isinstance(v, (int, float)) else str(v) for v in value) or _("none")
    return "None" if value is None else _num(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)
