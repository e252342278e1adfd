"""How ``salesforce.where`` compares a lead's value with a literal, as Salesforce does (the parser is
``syncd/soql/where.py``): text without regard to case but ids exactly, NULL as its own value,
datetimes at whole seconds, multi-select picklists as sets."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date, datetime, timezone
from typing import Any

Record = Mapping[str, Any]
Test = Callable[[Record], bool]
_MISSING = object()


class WhereError(ValueError):
    """The condition is not one syncd can evaluate exactly; the message names the construct."""


class WhereTypeError(ValueError):
    """A lead's value is not of the kind its literal compares with (a configuration mistake)."""


_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}


def field_value(record: Record, path: str) -> Any:
    """A field of the lead or of one related record (``Owner.Name``); None when absent or NULL.

    Salesforce names fields in its own spelling, whatever the query's: an exact key first, then
    one without regard to case.
    """
    current: Any = record
    for part in path.split("."):
        if not isinstance(current, Mapping):
            return None
        value = current.get(part, _MISSING)
        if value is _MISSING:
            low = part.lower()
            value = next((v for k, v in current.items() if isinstance(k, str) and k.lower() == low), None)
        current = value
    return current


def _plain(text: str) -> str:
    """A string literal's value outside LIKE: ``\\%`` and ``\\_`` stand for themselves."""
    return text.replace("\\%", "%").replace("\\_", "_")


def like(pattern: str) -> re.Pattern[str]:
    parts, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern) and pattern[i + 1] in "%_":
            parts.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        parts.append(".*" if c == "%" else "." if c == "_" else re.escape(c))
        i += 1
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


def _seconds(value: datetime) -> datetime:
    return value.astimezone(timezone.utc).replace(microsecond=0)


def _coerce(got: Any, literal: Any, name: str) -> Any:
    """The lead's value in the literal's kind (text folded for comparison); WhereTypeError if it is not one."""
    if isinstance(literal, bool):
        if isinstance(got, bool):
            return got
    elif isinstance(literal, (int, float)):
        if isinstance(got, (int, float)) and not isinstance(got, bool):
            return got
    elif isinstance(literal, datetime):
        if isinstance(got, str) and "T" in got:
            try:
                return _seconds(datetime.fromisoformat(got.replace("Z", "+00:00")))
            except ValueError:
                pass
    elif isinstance(literal, date):
        if isinstance(got, str) and len(got) == 10:
            try:
                return date.fromisoformat(got)
            except ValueError:
                pass
    elif isinstance(got, str):
        return got if is_id(name) else got.casefold()
    raise WhereTypeError(f"where: {name} holds {type(got).__name__}, compared with a {type(literal).__name__} literal")


def is_id(name: str) -> bool:
    """Id and reference fields compare exactly: a 15-character Salesforce id is case-sensitive."""
    return name.rpartition(".")[2].endswith("Id")


def _fold(literal: Any, name: str) -> Any:
    if isinstance(literal, str):
        return literal if is_id(name) else literal.casefold()
    if isinstance(literal, datetime):
        return _seconds(literal)
    return literal


def compare(name: str, op: str, literal: Any) -> Test:
    if isinstance(literal, str):
        literal = _plain(literal)
    if literal is None:
        if op == "=":
            return lambda r: field_value(r, name) is None
        if op in ("!=", "<>"):
            return lambda r: field_value(r, name) is not None
        raise WhereError(f"{name} {op} null: only = and != compare with null")
    want = _fold(literal, name)
    if op in ("=", "!=", "<>"):
        equal = op == "="

        def eq(r: Record) -> bool:
            got = field_value(r, name)
            if got is None:
                return not equal
            return (_coerce(got, literal, name) == want) is equal

        return eq
    if isinstance(literal, bool):
        raise WhereError(f"{name} {op} {literal}: booleans compare with = and != only")
    order = _ORDER[op]

    def cmp(r: Record) -> bool:
        got = field_value(r, name)
        return got is not None and order(_coerce(got, literal, name), want)

    return cmp


def is_in(name: str, literals: list[Any], negate: bool) -> Test:
    plain = [_plain(v) if isinstance(v, str) else v for v in literals]
    has_null = any(v is None for v in plain)
    typed = [v for v in plain if v is not None]
    wanted = {_fold(v, name) for v in typed}

    def test(r: Record) -> bool:
        got = field_value(r, name)
        if got is None:
            return has_null != negate
        found = bool(typed) and _coerce(got, typed[0], name) in wanted
        return found != negate

    return test


def includes(name: str, literals: list[Any], excludes: bool) -> Test:
    if not all(isinstance(v, str) for v in literals):
        raise WhereError(f"INCLUDES and EXCLUDES on {name} take strings")
    groups = [frozenset(p.strip().casefold() for p in _plain(v).split(";") if p.strip()) for v in literals]

    def test(r: Record) -> bool:
        got = field_value(r, name)
        if got is None:
            return excludes
        if not isinstance(got, str):
            raise WhereTypeError(f"where: {name} holds {type(got).__name__}, not a multi-select picklist")
        have = {p.strip().casefold() for p in got.split(";")}
        return any(g <= have for g in groups) != excludes

    return test
