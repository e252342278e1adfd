"""What the simulated org's SystemModstamp index serves of a WHERE (``syncd/sim/soql.py`` parses it).

A window query's lower bound lets the simulator start at a point of the index instead of the first
lead; a WHERE of nothing but bounds on SystemModstamp is judged as a range of the index's key, not by
the predicate chain, for each of a million rows. Both read the WHERE's tokens, at whole seconds as
Salesforce compares datetimes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from syncd.sim.soql import Tok

Record = dict[str, Any]
Predicate = Callable[[Record], bool]
Range = tuple[datetime | None, datetime | None]


def seconds(value: datetime) -> datetime:
    """A datetime at the whole second, in UTC: what Salesforce compares."""
    return value.astimezone(timezone.utc).replace(microsecond=0)


def datetime_literal(text: str) -> datetime:
    """An unquoted SOQL datetime (``2024-05-15T10:30:00Z``, ``...+02:00``)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def modstamp_floor(toks: list[Tok]) -> datetime | None:
    """The largest ``SystemModstamp >=|> <datetime>`` that is a conjunct of the whole WHERE.

    Only when no OR sits outside parentheses (then every top-level comparison must hold), and not
    one negated by NOT. None when the WHERE gives no such bound.
    """
    depth, floor = 0, None
    for i, tok in enumerate(toks):
        if tok.text == "(":
            depth += 1
        elif tok.text == ")":
            depth -= 1
        elif depth == 0 and tok.kind == "kw" and tok.text == "OR":
            return None
        elif (depth == 0 and tok.kind == "ident" and tok.text.lower() == "systemmodstamp" and i + 2 < len(toks)
              and toks[i + 1].text in (">=", ">") and toks[i + 2].kind == "datetime"
              and not (i > 0 and toks[i - 1].text == "NOT")):
            # Whole seconds, as the comparison itself: a row at .2 s passes ">= .5 s" of the same second.
            bound = seconds(datetime_literal(toks[i + 2].text))
            floor = bound if floor is None or bound > floor else floor
    return floor


def modstamp_range(toks: list[Tok]) -> Range | None:
    """``[low, high)`` when the WHERE is only ``SystemModstamp <op> <datetime>`` joined by AND, else None.

    Salesforce compares at whole seconds, so ``> X`` admits from the second after X's, ``<= X`` up to
    the end of X's second; ``>=`` and ``<`` take X's second itself."""
    low: datetime | None = None
    high: datetime | None = None
    for i in range(0, len(toks), 4):
        part = toks[i:i + 4]
        if (len(part) < 3 or part[0].kind != "ident" or part[0].text.lower() != "systemmodstamp"
                or part[1].text not in (">=", ">", "<", "<=") or part[2].kind != "datetime"
                or (len(part) == 4 and not (part[3].kind == "kw" and part[3].text == "AND"))
                or (len(part) == 3 and i + 3 != len(toks))):
            return None
        bound = seconds(datetime_literal(part[2].text))
        if part[1].text in (">", "<="):
            bound += timedelta(seconds=1)
        if part[1].text in (">=", ">"):
            low = bound if low is None or bound > low else low
        else:
            high = bound if high is None or bound < high else high
    return (low, high) if toks and toks[-1].kind == "datetime" else None


def in_range(bounds: Range, where: Predicate, records: Iterable[Record]) -> list[Record]:
    """The records whose SystemModstamp is in ``bounds``: the rows ``where`` selects when it is made of
    nothing but those bounds, without its chain of calls per row."""
    low, high = bounds

    def within(r: Record) -> bool:
        v = r.get("SystemModstamp")
        if type(v) is not datetime or v.tzinfo is None:
            return bool(where(r))  # not a time the range can judge: the predicate does
        return (low is None or v >= low) and (high is None or v < high)

    return [r for r in records if within(r)]
