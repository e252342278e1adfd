"""The cursor spec (syncd/window.py), tested as dlt tests its Incremental: open, resume, position, after."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.window import Window, parse_sf_datetime

T = datetime(2024, 5, 15, 10, 30, 0, 700_000, tzinfo=timezone.utc)


def test_a_first_window_is_the_whole_org_up_to_now_minus_lag_to_the_second() -> None:
    w = Window.open(None, T, lookback_seconds=300, lag_seconds=60)
    assert (w.start, w.end) == (None, datetime(2024, 5, 15, 10, 29, tzinfo=timezone.utc))
    assert w.after is None
    assert "SystemModstamp >=" not in w.query(["Id"])


def test_a_later_window_starts_a_lookback_before_the_watermark() -> None:
    mark = datetime(2024, 5, 15, 10, 0, tzinfo=timezone.utc)
    w = Window.open(mark, T, lookback_seconds=300, lag_seconds=60)
    assert w.start == mark - timedelta(seconds=300)
    assert "SystemModstamp >= 2024-05-15T09:55:00Z AND SystemModstamp < 2024-05-15T10:29:00Z" in w.query(["Id"])


def test_the_end_never_moves_before_the_watermark() -> None:
    mark = T + timedelta(hours=1)  # a watermark from a clock that ran ahead
    assert Window.open(mark, T, lookback_seconds=0, lag_seconds=60).end == mark


def test_advance_takes_the_last_usable_row_and_keeps_the_position_otherwise() -> None:
    w = Window(None, T)
    rows: list[Any] = [{"Id": "A", "SystemModstamp": "2024-05-15T10:00:00.000+0000"},
                       {"Id": "B", "SystemModstamp": "2024-05-15T10:00:01.000+0000"},
                       {"Id": 7, "SystemModstamp": "2024-05-15T10:00:02.000+0000"}, "junk",
                       {"Id": "00Q\udc55", "SystemModstamp": "2024-05-15T10:00:03.000+0000"},  # cannot be saved
                       {"Id": "C", "SystemModstamp": "not a time"}]
    moved = w.advance(rows)
    assert moved.position == ("2024-05-15T10:00:01+00:00", "B")
    assert moved.advance([{"Id": "D"}, None]) == moved  # nothing usable: where it stood
    assert moved.after == (datetime(2024, 5, 15, 10, 0, 1, tzinfo=timezone.utc), "B")


def test_resume_continues_strictly_after_the_committed_row() -> None:
    w = Window.resume(None, T, "2024-05-15T10:00:01+00:00", "00QB")
    text = w.query(["Id"])
    assert ("(SystemModstamp > 2024-05-15T10:00:01Z OR (SystemModstamp = 2024-05-15T10:00:01Z AND Id > '00QB'))"
            in text)
    assert text.endswith("ORDER BY SystemModstamp ASC, Id ASC")


stamps = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(timezone.utc))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(stamps, st.text(alphabet="ABC123", min_size=1, max_size=4)), min_size=1, max_size=30))
def test_advancing_page_by_page_ends_where_one_page_would(rows: list[tuple[datetime, str]]) -> None:
    ordered = sorted((ts.replace(microsecond=ts.microsecond // 1000 * 1000), i) for ts, i in rows)
    records = [{"Id": i, "SystemModstamp": ts.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"} for ts, i in ordered]
    whole = Window(None, T).advance(records)
    stepped = Window(None, T)
    for k in range(0, len(records), 7):
        stepped = stepped.advance(records[k:k + 7])
    assert stepped == whole
    assert whole.after == (ordered[-1][0], ordered[-1][1])
    assert parse_sf_datetime(records[-1]["SystemModstamp"]) == ordered[-1][0]


def _strptime(value: str) -> datetime:
    return datetime.strptime(value.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z").astimezone(timezone.utc)


def _outcome(parse: Any, value: str) -> tuple[str, str]:
    try:
        return "ok", parse(value).isoformat()
    except ValueError:
        return "refused", ""


_stamps = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31),
                       timezones=st.just(timezone.utc)).map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.") +
                                                            f"{d.microsecond // 1000:03d}")


@settings(max_examples=300)
@given(st.one_of(st.tuples(_stamps, st.sampled_from(["Z", "+0000", "+0130", "-0800", ""])).map("".join),
                 st.from_regex(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{1,6}(Z|\+0000)\Z"),
                 st.text(max_size=30)))
def test_a_salesforce_datetime_reads_as_strptime_reads_it(value: str) -> None:
    """The fast road (Salesforce's own form) and strptime agree on every text: the value, or a refusal."""
    assert _outcome(parse_sf_datetime, value) == _outcome(_strptime, value)
