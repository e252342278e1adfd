"""A small SOQL evaluator for the simulator: enough of the language that syncd (or anyone) sends.

Supported: ``SELECT f, .. FROM Lead [WHERE expr] [ORDER BY f [ASC|DESC] [NULLS FIRST|LAST], ..]
[LIMIT n]`` where ``expr`` has AND, OR, NOT, parentheses, ``= != <> < <= > >=``, ``[NOT] IN (..)``,
``LIKE`` and ``INCLUDES``/``EXCLUDES`` on strings, datetimes (unquoted, compared at whole seconds),
dates, numbers, booleans and NULL, over Lead fields and one-level relationship fields
(``Owner.Name``). Text compares without regard to case. Errors carry Salesforce's codes:
MALFORMED_QUERY and INVALID_FIELD. Written apart from ``syncd/soql/where.py`` on purpose: the
tests hold the two to the same answers. What the SystemModstamp index serves of a WHERE is in
``soql_index.py``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from syncd.sim.soql_index import (
    Predicate,
    Range,
    Record,
    datetime_literal,
    in_range,
    modstamp_floor,
    modstamp_range,
    seconds,
)

TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2})
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[(),])
  | (?P<ident>[A-Za-z_][A-Za-z0-9_.]*)
""", re.VERBOSE)
KEYWORDS = {"SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "INCLUDES", "EXCLUDES", "ORDER", "BY",
            "ASC", "DESC", "LIMIT", "NULLS", "FIRST", "LAST", "TRUE", "FALSE", "NULL"}
ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", '"': '"', "'": "'", "\\": "\\",
           "_": "\x00_", "%": "\x00%"}  # \x00 marks a LIKE wildcard escaped to stand for itself


class SoqlError(Exception):
    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


@dataclass(frozen=True)
class Query:
    fields: list[str]
    sobject: str
    where: Predicate
    order: list[tuple[str, bool, bool]]  # field, descending, nulls_last
    limit: int | None
    # A lower bound on SystemModstamp every matching row has (from a top-level AND), for the
    # simulator's index, as Salesforce's index on SystemModstamp serves the window query.
    since: datetime | None = None
    # When the WHERE is nothing but bounds on SystemModstamp (the window query of a first read), the
    # half-open range [low, high) of the row's time those bounds admit; None bound: open.
    stamp_range: Range | None = None


@dataclass(frozen=True)
class Tok:
    kind: str
    text: str


def tokenize(text: str) -> list[Tok]:
    out, pos = [], 0
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if not m:
            raise SoqlError("MALFORMED_QUERY", f"unexpected character at position {pos}: {text[pos:pos + 10]!r}")
        pos = m.end()
        kind = m.lastgroup or ""
        if kind == "ws":
            continue
        value = m.group()
        if kind == "ident" and value.upper() in KEYWORDS:
            out.append(Tok("kw", value.upper()))
        else:
            out.append(Tok(kind, value))
    return out


def _unquote(raw: str) -> str:
    body, out, i = raw[1:-1], [], 0
    while i < len(body):
        c = body[i]
        if c == "\\":
            if i + 1 >= len(body) or body[i + 1] not in ESCAPES:
                raise SoqlError("MALFORMED_QUERY", "invalid escape sequence in a string literal")
            out.append(ESCAPES[body[i + 1]])
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def is_id(name: str) -> bool:
    """Id and reference fields: compared exactly (a 15-character id is case-sensitive)."""
    return name.rpartition(".")[2].endswith("Id")


def _comparable(value: Any, fold: bool = True) -> Any:
    # Salesforce compares datetimes at whole seconds (equality ignores milliseconds), text without case.
    if isinstance(value, datetime):
        return seconds(value)
    if isinstance(value, str):
        text = value.replace("\x00", "")
        return text.casefold() if fold else text
    return value


def get(record: Record, name: str) -> Any:
    """A field of the row, or of its related record for ``Owner.Name``."""
    rel, dot, sub = name.partition(".")
    if not dot:
        return record.get(name)
    related = record.get(rel)
    return related.get(sub) if isinstance(related, dict) else None


def _like(pattern: str) -> re.Pattern[str]:
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\x00" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if c == "%" else "." if c == "_" else re.escape(c))
        i += 1
    return re.compile("^" + "".join(out) + "$", re.IGNORECASE | re.DOTALL)


class Parser:
    def __init__(self, tokens: list[Tok], fields: Sequence[str]) -> None:
        self.toks = tokens
        self.i = 0
        self.known = {f.lower(): f for f in fields}

    def peek(self, *texts: str) -> bool:
        return self.i < len(self.toks) and (not texts or self.toks[self.i].text.upper() in texts)

    def take(self, kind: str | None = None, text: str | None = None) -> Tok:
        if self.i >= len(self.toks):
            raise SoqlError("MALFORMED_QUERY", f"unexpected end of query, expected {text or kind}")
        tok = self.toks[self.i]
        if (kind and tok.kind != kind) or (text and tok.text.upper() != text):
            raise SoqlError("MALFORMED_QUERY", f"unexpected token {tok.text!r}, expected {text or kind}")
        self.i += 1
        return tok

    def field(self) -> str:
        tok = self.take("ident")
        name = self.known.get(tok.text.lower())
        if name is None:
            raise SoqlError("INVALID_FIELD", f"No such column '{tok.text}' on entity 'Lead'")
        return name

    def parse(self) -> Query:
        self.take("kw", "SELECT")
        fields = [self.field()]
        while self.peek(","):
            self.take("punct")
            fields.append(self.field())
        self.take("kw", "FROM")
        sobject = self.take("ident").text
        if sobject.lower() != "lead":
            raise SoqlError("INVALID_TYPE", f"sObject type '{sobject}' is not supported")
        where: Predicate = lambda r: True  # noqa: E731
        since = None
        stamp_range = None
        if self.peek("WHERE"):
            self.take()
            first = self.i
            where = self.expr()
            since = modstamp_floor(self.toks[first:self.i])
            stamp_range = modstamp_range(self.toks[first:self.i])
        order = []
        if self.peek("ORDER"):
            self.take()
            self.take("kw", "BY")
            while True:
                f = self.field()
                desc = False
                if self.peek("ASC", "DESC"):
                    desc = self.take().text == "DESC"
                nulls_last = desc
                if self.peek("NULLS"):
                    self.take()
                    nulls_last = self.take("kw").text == "LAST"
                order.append((f, desc, nulls_last))
                if not self.peek(","):
                    break
                self.take()
        limit = None
        if self.peek("LIMIT"):
            self.take()
            limit = int(self.take("number").text)
        if self.i != len(self.toks):
            raise SoqlError("MALFORMED_QUERY", f"unexpected token {self.toks[self.i].text!r}")
        return Query(fields, "Lead", where, order, limit, since, stamp_range)

    def expr(self) -> Predicate:
        left = self.term()
        while self.peek("OR"):
            self.take()
            right = self.term()
            left = (lambda a, b: lambda r: a(r) or b(r))(left, right)
        return left

    def term(self) -> Predicate:
        left = self.factor()
        while self.peek("AND"):
            self.take()
            right = self.factor()
            left = (lambda a, b: lambda r: a(r) and b(r))(left, right)
        return left

    def factor(self) -> Predicate:
        if self.peek("NOT"):
            self.take()
            inner = self.factor()
            return lambda r: not inner(r)
        if self.peek("("):
            self.take()
            inner = self.expr()
            self.take("punct", ")")
            return inner
        return self.comparison()

    def value(self) -> Any:
        tok = self.take()
        if tok.kind == "string":
            return _unquote(tok.text)
        if tok.kind == "datetime":
            return datetime_literal(tok.text)
        if tok.kind == "date":
            return date.fromisoformat(tok.text)
        if tok.kind == "number":
            return float(tok.text) if "." in tok.text else int(tok.text)
        if tok.kind == "kw" and tok.text in ("TRUE", "FALSE"):
            return tok.text == "TRUE"
        if tok.kind == "kw" and tok.text == "NULL":
            return None
        raise SoqlError("MALFORMED_QUERY", f"unexpected token {tok.text!r}, expected a value")

    def values(self) -> list[Any]:
        """``(v, v, ..)``: the list of IN, INCLUDES and EXCLUDES."""
        self.take("punct", "(")
        out = [self.value()]
        while self.peek(","):
            self.take()
            out.append(self.value())
        self.take("punct", ")")
        return out

    def comparison(self) -> Predicate:
        name = self.field()
        negate = False
        if self.peek("NOT"):
            self.take()
            negate = True
            if not self.peek("IN"):
                raise SoqlError("MALFORMED_QUERY", "NOT after a field must be followed by IN")
        if self.peek("IN"):
            self.take()
            values = self.values()
            fold = not is_id(name)
            wanted = {_comparable(v, fold) for v in values}
            return lambda r: (_comparable(get(r, name), fold) in wanted) != negate
        if self.peek("INCLUDES", "EXCLUDES"):
            excludes = self.take().text == "EXCLUDES"
            terms = self.values()
            if not all(isinstance(t, str) for t in terms):
                raise SoqlError("MALFORMED_QUERY", "INCLUDES and EXCLUDES take strings")
            sets = [{p.strip().casefold() for p in _comparable(t).split(";") if p.strip()} for t in terms]

            def includes(r: Record) -> bool:
                got = get(r, name)
                if got is None:
                    return excludes  # no value includes nothing, and excludes everything
                have = {p.strip().casefold() for p in str(got).split(";")}
                return any(s <= have for s in sets) != excludes

            return includes
        if self.peek("LIKE"):
            self.take()
            pattern = self.value()
            if not isinstance(pattern, str):
                raise SoqlError("MALFORMED_QUERY", "LIKE needs a string")
            rx = _like(pattern)
            return lambda r: isinstance(v := get(r, name), str) and rx.match(v) is not None
        op = self.take("op").text
        value = _comparable(self.value(), not is_id(name))
        return _compare(name, op, value)


def _compare(name: str, op: str, value: Any) -> Predicate:
    if value is None:
        if op in ("=",):
            return lambda r: get(r, name) is None
        if op in ("!=", "<>"):
            return lambda r: get(r, name) is not None
        raise SoqlError("MALFORMED_QUERY", "only = and != compare with null")
    ops: dict[str, Callable[[Any, Any], bool]] = {
        "=": lambda a, b: a == b, "!=": lambda a, b: a != b, "<>": lambda a, b: a != b,
        "<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
    }
    fn = ops[op]

    def pred(r: Record) -> bool:
        got = get(r, name)
        if got is None:
            return op in ("!=", "<>")
        got = _comparable(got, not is_id(name))
        if isinstance(got, bool) != isinstance(value, bool) or isinstance(got, str) != isinstance(value, str):
            raise SoqlError("INVALID_QUERY_FILTER_OPERATOR",
                            f"value of filter criterion for field '{name}' must be of a matching type")
        try:
            return fn(got, value)
        except TypeError:
            raise SoqlError("INVALID_QUERY_FILTER_OPERATOR",
                            f"value of filter criterion for field '{name}' must be of a matching type") from None

    return pred


def parse(text: str, fields: Sequence[str]) -> Query:
    return Parser(tokenize(text), fields).parse()


def run(query: Query, records: Sequence[Record], presorted: Sequence[str] = ()) -> list[Record]:
    """The records the query selects, in its order. ``presorted`` names the (ascending, never null) fields
    ``records`` are already ordered by, as an index would give them: an ORDER BY of exactly those is free."""
    rows = (in_range(query.stamp_range, query.where, records) if query.stamp_range is not None
            else [r for r in records if query.where(r)])
    if presorted and [(name, desc) for name, desc, _ in query.order] == [(name, False) for name in presorted]:
        return rows[: query.limit] if query.limit is not None else rows
    for name, desc, nulls_last in reversed(query.order):
        present = [r for r in rows if get(r, name) is not None]
        absent = [r for r in rows if get(r, name) is None]
        present.sort(key=lambda r: get(r, name), reverse=desc)
        rows = present + absent if nulls_last else absent + present
    return rows[: query.limit] if query.limit is not None else rows
