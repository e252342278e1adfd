"""A remote's JSON answer reads the same through orjson (the fast path) as through ``requests``' own
``json()``: every body either gives the same value, or the same failure (issue 15)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st
from requests.utils import get_encoding_from_headers

from syncd.errors import ProtocolError
from syncd.http import json_body


def answer(content: bytes, content_type: str = "application/json;charset=UTF-8") -> requests.Response:
    resp = requests.Response()
    resp._content = content
    resp.status_code = 200
    resp.headers["Content-Type"] = content_type
    resp.encoding = get_encoding_from_headers(resp.headers)
    resp.request = requests.Request("GET", "https://example.invalid/services/data/v62.0/query").prepare()
    return resp


def plain(resp: requests.Response) -> Any:
    """What ``requests`` reads, or the failure syncd reports for it."""
    try:
        return resp.json()
    except RecursionError:
        return "nests too deeply"
    except ValueError:
        return "not JSON"


def fast(resp: requests.Response) -> Any:
    try:
        return json_body(resp, "salesforce")
    except ProtocolError as e:
        return "nests too deeply" if "deeply" in str(e) else "not JSON"


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b if not isinstance(a, dict | list) else json.dumps(a) == json.dumps(b)


EDGES = [
    b'{"n": 123456789012345678901234567890}',  # beyond 64 bits: orjson would make it a float
    b'{"n": -9223372036854775809}', b'{"n": 18446744073709551615}', b'{"n": 1e400}', b'{"n": NaN}',
    b'{"n": -Infinity}', b'{"s": "\\ud800"}', b'\xef\xbb\xbf{"a": 1}', b'{"a": 1, "a": 2}', b'{"a": "\\u0000"}',
    b'[' * 5000 + b']' * 5000, b'', b'null', b'{"a": 1} x', b'{"a": "\xff"}', '{"a": "é"}'.encode("utf-16"),
    '{"a": "é"}'.encode(), b'{"id": "0012345678901234567890"}', b' {"records": [], "done": true} ',
]


@pytest.mark.parametrize("content", EDGES)
@pytest.mark.parametrize("content_type", ["application/json;charset=UTF-8", "application/json",
                                          "text/plain; charset=ISO-8859-1", ""])
def test_an_edge_case_reads_as_requests_reads_it(content: bytes, content_type: str) -> None:
    expected, got = plain(answer(content, content_type)), fast(answer(content, content_type))
    assert same(got, expected), (got, expected)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5), max_leaves=30)


@given(JSON, st.booleans())
def test_any_json_value_reads_as_requests_reads_it(value: Any, ascii_only: bool) -> None:
    content = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    expected, got = plain(answer(content)), fast(answer(content))
    assert same(got, expected), (got, expected)
