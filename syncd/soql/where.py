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
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from syncd.soql.compare import (
    Record,
    Test,
    WhereError,
    WhereTypeError,
    compare,
    field_value,
    includes,
    is_in,
    like,
)

__all__ = ["Where", "WhereError", "WhereTypeError", "field_value", "parse_where"]

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
            return is_in(name, self.values(), negate)
        if self.peek("INCLUDES", "EXCLUDES"):
            excludes = self.take().text == "EXCLUDES"
            return includes(name, self.values(), excludes)
        if self.peek("LIKE"):
            self.take()
            pattern = self.literal()
            if not isinstance(pattern, str):
                raise WhereError(f"LIKE on {name} needs a string pattern")
            rx = like(pattern)
            return lambda r: isinstance(v := field_value(r, name), str) and rx.fullmatch(v) is not None
        tok = self.take()
        if tok.kind != "op":
            raise WhereError(f"unexpected {tok.text!r} after {name}, where an operator was expected")
        return compare(name, tok.text, self.literal())


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
