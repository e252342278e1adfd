"""``salesforce.where``: a SOQL condition parsed at config load and evaluated by syncd on each lead.

It is never sent: a lead that stops matching must still be read, to be removed (DESIGN.md, Transform).
Accepted: comparisons (``= != <> < <= > >=``), ``[NOT] IN (..)``, ``LIKE``, ``INCLUDES`` / ``EXCLUDES``
on multi-select picklists, ``AND`` / ``OR`` / ``NOT`` with parentheses, ``NULL``, ``TRUE`` / ``FALSE``,
numbers, strings, date and datetime literals, and fields of the Lead or of one related record
(``Owner.Name``). Refused, naming the construct (exit 2 at config load): what the Lead row cannot
decide (a semi-join, an aggregate), what changes with no change syncd can read (date literals
relative to today such as ``LAST_N_DAYS:30``), what depends on the running user (date functions
convert to the user's time zone, ``toLabel``, ``convertCurrency``), bind variables, currency
literals, relationships deeper than one level, and ``AND`` mixed with ``OR`` without parentheses.

Salesforce semantics, as the table in ``tests/test_where.py`` holds them:
- text comparisons (``=``, ``!=``, ``IN``, ``LIKE``, ``INCLUDES``, and the order of ``<``/``>``) ignore case,
  but for Id and reference fields (``...Id``), which compare exactly;
- a NULL field: ``= null`` true; ``!=``, ``NOT IN`` and ``EXCLUDES`` true; every other comparison false;
- ``INCLUDES ('a;b', 'c')`` holds when the field's values contain both a and b, or c;
- datetimes compare at whole seconds; a date literal compares with a date field only.
A value of the wrong kind for its literal (text against a number) raises :class:`WhereTypeError`:
the lead is skipped as malformed, and ``syncd doctor`` checks every field's type against ``describe``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

Record = Mapping[str, Any]
Test = Callable[[Record], bool]

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2})(?![\dT])
  | (?P<number>[+-]?\d+(?:\.\d+)?)(?![\w.])
  | (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[(),])
  | (?P<bind>:[A-Za-z_]\w*)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_.]*(?::\d+)?)
""", re.VERBOSE)
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", '"': '"', "'": "'", "\\": "\\"}
_KEYWORDS = {"AND", "OR", "NOT", "IN", "LIKE", "INCLUDES", "EXCLUDES", "TRUE", "FALSE", "NULL", "SELECT"}
_AGGREGATES = {"COUNT", "COUNT_DISTINCT", "SUM", "AVG", "MIN", "MAX"}
_DATE_FUNCTIONS = {"CALENDAR_MONTH", "CALENDAR_QUARTER", "CALENDAR_YEAR", "DAY_IN_MONTH", "DAY_IN_WEEK",
                   "DAY_IN_YEAR", "DAY_ONLY", "FISCAL_MONTH", "FISCAL_QUARTER", "FISCAL_YEAR", "HOUR_IN_DAY",
                   "WEEK_IN_MONTH", "WEEK_IN_YEAR", "CONVERTTIMEZONE"}
_RELATIVE = re.compile(r"^(?:TODAY|YESTERDAY|TOMORROW|(?:LAST|THIS|NEXT)_(?:WEEK|MONTH|QUARTER|YEAR|FISCAL_QUARTER"
                       r"|FISCAL_YEAR)|(?:LAST|NEXT)_90_DAYS|(?:LAST|NEXT)_N_[A-Z_]+|N_[A-Z_]+_AGO)(?::\d+)?$",
                       re.IGNORECASE)
_CURRENCY = re.compile(r"^[A-Z]{3}\d+(?:\.\d+)?$")
_FIELD = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,79}$")
_MISSING = object()


class WhereError(ValueError):
    """The condition is not one syncd can evaluate exactly; the message names the construct."""


class WhereTypeError(ValueError):
    """A lead's value is not of the kind its literal compares with (a configuration mistake)."""


@dataclass(frozen=True)
class Where:
    text: str
    fields: tuple[str, ...]  # every field it reads, as written (``Owner.Name`` included)
    test: Test

    def __call__(self, record: Record) -> bool:
        return self.test(record)


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str


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


def _tokens(text: str) -> list[_Tok]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise WhereError(f"unexpected character at position {pos}: {text[pos:pos + 12]!r}")
        pos = m.end()
        kind = m.lastgroup or ""
        if kind == "ws":
            continue
        value = m.group()
        if kind == "ident" and value.upper() in _KEYWORDS:
            out.append(_Tok("kw", value.upper()))
        else:
            out.append(_Tok(kind, value))
    return out


def _unquote(raw: str) -> str:
    body, out, i = raw[1:-1], [], 0
    while i < len(body):
        c = body[i]
        if c == "\\":
            nxt = body[i + 1] if i + 1 < len(body) else ""
            if nxt in ("%", "_"):
                out.append("\\" + nxt)  # kept escaped for LIKE, which alone gives it meaning
            elif nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
            else:
                raise WhereError("invalid escape sequence in a string literal (Salesforce allows \\n \\r \\t "
                                 "\\b \\f \\\" \\' \\\\ \\% \\_)")
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _plain(text: str) -> str:
    """A string literal's value outside LIKE: ``\\%`` and ``\\_`` stand for themselves."""
    return text.replace("\\%", "%").replace("\\_", "_")


def _like(pattern: str) -> re.Pattern[str]:
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


_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}


class _Parser:
    def __init__(self, tokens: list[_Tok]) -> None:
        self.toks = tokens
        self.i = 0
        self.fields: list[str] = []

    def peek(self, *texts: str) -> bool:
        return self.i < len(self.toks) and (not texts or self.toks[self.i].text.upper() in texts)

    def take(self, text: str | None = None) -> _Tok:
        if self.i >= len(self.toks):
            raise WhereError(f"the condition ends where {text or 'more'} was expected")
        tok = self.toks[self.i]
        if text is not None and tok.text.upper() != text:
            raise WhereError(f"unexpected {tok.text!r} where {text!r} was expected")
        self.i += 1
        return tok

    def expr(self) -> Test:
        first = self.factor()
        if not self.peek("AND", "OR"):
            return first
        joiner = self.toks[self.i].text
        items = [first]
        while self.peek("AND", "OR"):
            if self.take().text != joiner:
                raise WhereError("AND mixed with OR needs parentheses (SOQL requires them): write "
                                 "(a AND b) OR c, or a AND (b OR c)")
            items.append(self.factor())
        if joiner == "AND":
            return lambda r: all(t(r) for t in items)
        return lambda r: any(t(r) for t in items)

    def factor(self) -> Test:
        if self.peek("NOT"):
            self.take()
            inner = self.factor()
            return lambda r: not inner(r)
        if self.peek("("):
            self.take()
            if self.peek("SELECT"):
                raise WhereError("a semi-join (IN (SELECT ..)) is refused: it depends on other records, which "
                                 "syncd cannot read with the lead")
            inner = self.expr()
            self.take(")")
            return inner
        return self.comparison()

    def field(self) -> str:
        tok = self.take()
        if tok.kind != "ident":
            raise WhereError(f"unexpected {tok.text!r} where a field name was expected")
        name = tok.text
        upper = name.upper()
        if self.peek("("):
            if upper in _AGGREGATES:
                raise WhereError(f"the aggregate {upper}() is refused: it is not decidable from one lead's row")
            if upper in _DATE_FUNCTIONS:
                raise WhereError(f"the date function {upper}() is refused: Salesforce converts to the running "
                                 "user's time zone, which syncd does not know; compare the field with date or "
                                 "datetime literals instead")
            raise WhereError(f"the function {name}() is refused: syncd evaluates fields and literals only")
        parts = name.split(".")
        if len(parts) > 2:
            raise WhereError(f"{name}: relationships deeper than one level are refused (Owner.Name is fine)")
        if not all(_FIELD.match(p) for p in parts):
            raise WhereError(f"{name!r} is not a Salesforce field name")
        self.fields.append(name)
        return name

    def literal(self) -> Any:
        tok = self.take()
        if tok.kind == "string":
            return _unquote(tok.text)
        if tok.kind == "number":
            return float(tok.text) if "." in tok.text else int(tok.text)
        if tok.kind == "datetime":
            return datetime.fromisoformat(tok.text.replace("Z", "+00:00"))
        if tok.kind == "date":
            try:
                return date.fromisoformat(tok.text)
            except ValueError:
                raise WhereError(f"{tok.text} is not a date") from None
        if tok.kind == "kw" and tok.text in ("TRUE", "FALSE", "NULL"):
            return {"TRUE": True, "FALSE": False, "NULL": None}[tok.text]
        if tok.kind == "ident" and _RELATIVE.match(tok.text):
            raise WhereError(f"the relative date literal {tok.text} is refused: a lead would leave or enter the "
                             "scope as days pass, with no change syncd could read; use a fixed date")
        if tok.kind == "bind":
            raise WhereError(f"the bind variable {tok.text} is refused: there is no Apex here to bind it")
        if tok.kind == "ident" and _CURRENCY.match(tok.text):
            raise WhereError(f"the currency literal {tok.text} is refused: it converts by the org's rates")
        if tok.kind == "kw" and tok.text == "SELECT":
            raise WhereError("a semi-join (IN (SELECT ..)) is refused: it depends on other records")
        raise WhereError(f"unexpected {tok.text!r} where a value was expected")

    def values(self) -> list[Any]:
        self.take("(")
        if self.peek("SELECT"):
            raise WhereError("a semi-join (IN (SELECT ..)) is refused: it depends on other records, which syncd "
                             "cannot read with the lead")
        out = [self.literal()]
        while self.peek(","):
            self.take()
            out.append(self.literal())
        self.take(")")
        return out

    def comparison(self) -> Test:
        name = self.field()
        negate = False
        if self.peek("NOT"):
            self.take()
            negate = True
            if not self.peek("IN"):
                raise WhereError(f"NOT after {name} must be followed by IN (write NOT {name} LIKE ..)")
        if self.peek("IN"):
            self.take()
            return _in(name, self.values(), negate)
        if self.peek("INCLUDES", "EXCLUDES"):
            excludes = self.take().text == "EXCLUDES"
            return _includes(name, self.values(), excludes)
        if self.peek("LIKE"):
            self.take()
            pattern = self.literal()
            if not isinstance(pattern, str):
                raise WhereError(f"LIKE on {name} needs a string pattern")
            rx = _like(pattern)
            return lambda r: isinstance(v := field_value(r, name), str) and rx.fullmatch(v) is not None
        tok = self.take()
        if tok.kind != "op":
            raise WhereError(f"unexpected {tok.text!r} after {name}, where an operator was expected")
        return _compare(name, tok.text, self.literal())


def _compare(name: str, op: str, literal: Any) -> Test:
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


def _in(name: str, literals: list[Any], negate: bool) -> Test:
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


def _includes(name: str, literals: list[Any], excludes: bool) -> Test:
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


def parse_where(text: str) -> Where | None:
    """The condition, or None when ``text`` is blank. Raises :class:`WhereError` naming what is refused."""
    if not text.strip():
        return None
    parser = _Parser(_tokens(text))
    test = parser.expr()
    if parser.i != len(parser.toks):
        tok = parser.toks[parser.i]
        raise WhereError(f"unexpected {tok.text!r} after the condition (only a condition goes in where: no "
                         "ORDER BY, LIMIT or WITH)")
    seen: dict[str, str] = {}
    for name in parser.fields:
        seen.setdefault(name.lower(), name)
    return Where(text.strip(), tuple(seen.values()), test)
