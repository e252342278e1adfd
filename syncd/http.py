"""One factory for HTTP sessions and one translation of HTTP failures into syncd errors.

urllib3's ``Retry`` does the transient retries (every method, 429 and 5xx, ``Retry-After`` honoured,
jittered exponential backoff); what is left after it is mapped once, here, to the error tree.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from syncd import __version__
from syncd.config import HttpConfig
from syncd.errors import (
    AnswerCut,
    ProtocolError,
    RemoteRejected,
    RemoteUnavailable,
    SessionExpired,
)

USER_AGENT = f"syncd/{__version__} (+https://github.com/syncd)"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class CappedRetry(Retry):
    """``Retry`` that honours ``Retry-After`` but never waits longer than ``backoff_max``:
    a hostile or confused remote must not park a run for hours."""

    def get_retry_after(self, response: Any) -> float | None:
        after = super().get_retry_after(response)
        return None if after is None else min(after, self.backoff_max)


class TimeoutSession(requests.Session):
    """A session whose every request has a timeout unless one is given, and whose answers are read
    in one call: requests reads a body 10 KB at a time, ~100 passes through urllib3 for each
    1 MB Salesforce page (about 1 µs of CPU per lead)."""

    def __init__(self, timeout: tuple[float, float]) -> None:
        super().__init__()
        self.default_timeout = timeout

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.default_timeout)
        if kwargs.get("stream"):
            return super().request(method, url, *args, **kwargs)
        kwargs["stream"] = True
        resp = super().request(method, url, *args, **kwargs)
        read_whole(resp)
        return resp


def read_whole(resp: requests.Response) -> None:
    """Read a streamed answer's whole body now, as ``stream=False`` would, failing the same way."""
    try:
        body = resp.raw.read(decode_content=True)
    except urllib3.exceptions.ReadTimeoutError as e:
        resp.close()
        raise requests.exceptions.ConnectionError(e, request=resp.request) from e
    except urllib3.exceptions.DecodeError as e:
        resp.close()
        raise requests.exceptions.ContentDecodingError(e, request=resp.request) from e
    except (urllib3.exceptions.HTTPError, OSError) as e:  # a body cut short, a reset connection
        resp.close()
        raise requests.exceptions.ChunkedEncodingError(e, request=resp.request) from e
    # What Response.content caches (the connection went back to the pool when the body ended).
    resp._content = body or b""
    resp.content  # noqa: B018 - reading it once marks the body consumed, as requests does


def make_session(
    *,
    retries: int = 5,
    backoff_factor: float = 0.5,
    backoff_max: float = 30.0,
    timeout: tuple[float, float] = (10.0, 120.0),
) -> requests.Session:
    retry = CappedRetry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        other=0,
        allowed_methods=None,  # every method: uploads are idempotent by external id
        status_forcelist=RETRY_STATUSES,
        backoff_factor=backoff_factor,
        backoff_max=backoff_max,
        backoff_jitter=backoff_factor,
        respect_retry_after_header=True,
        raise_on_status=False,  # the last answer reaches raise_for_status, which names it
    )
    session = TimeoutSession(timeout)
    adapter = HTTPAdapter(max_retries=retry, pool_maxsize=16)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    session.headers["Accept"] = "application/json"
    # TLS verification is always on: nothing in syncd can turn it off.
    session.verify = True
    return session


def session_for(config: HttpConfig) -> requests.Session:
    return make_session(retries=config.retries, backoff_factor=config.backoff_seconds,
                        backoff_max=config.max_backoff_seconds,
                        timeout=(config.connect_timeout_seconds, config.read_timeout_seconds))


def path_of(url: str) -> str:
    return urlsplit(url).path or "/"


def send(session: requests.Session, method: str, url: str, remote: str, **kwargs: Any) -> requests.Response:
    """Send one request; network failures that survived the retries become ``RemoteUnavailable``."""
    try:
        return session.request(method, url, **kwargs)
    except requests.exceptions.RetryError as e:
        raise RemoteUnavailable("gave up after repeated retries", remote=remote, method=method,
                                path=path_of(url)) from e
    except requests.exceptions.Timeout as e:
        raise RemoteUnavailable("timed out", remote=remote, method=method, path=path_of(url)) from e
    except requests.exceptions.ConnectionError as e:
        raise RemoteUnavailable("connection failed", remote=remote, method=method, path=path_of(url)) from e
    except requests.exceptions.ChunkedEncodingError as e:
        raise AnswerCut("the answer broke off before its end", remote=remote, method=method,
                        path=path_of(url)) from e
    except requests.exceptions.RequestException as e:
        raise RemoteUnavailable(type(e).__name__, remote=remote, method=method, path=path_of(url)) from e


def raise_for_status(resp: requests.Response, remote: str) -> None:
    """Map a failed answer to the error tree. The body is never quoted (it may echo data)."""
    if resp.status_code < 400:
        return
    req = resp.request
    kw: dict[str, Any] = {"remote": remote, "method": req.method or "", "path": path_of(req.url or ""),
                          "status": resp.status_code}
    if resp.status_code == 401:
        raise SessionExpired("not authorised", **kw)
    if resp.status_code in RETRY_STATUSES:
        raise RemoteUnavailable("still failing after retries", **kw)
    raise RemoteRejected("request rejected", **kw)


def json_body(resp: requests.Response, remote: str) -> Any:
    try:
        return resp.json()
    except (ValueError, json.JSONDecodeError) as e:
        req = resp.request
        raise ProtocolError("answer is not JSON", remote=remote, method=req.method or "",
                            path=path_of(req.url or ""), status=resp.status_code) from e


def json_object(resp: requests.Response, remote: str, *keys: str) -> dict[str, Any]:
    """The body as a JSON object that holds ``keys``, or ``ProtocolError``."""
    body = json_body(resp, remote)
    req = resp.request
    if not isinstance(body, dict):
        raise ProtocolError("answer is not a JSON object", remote=remote, method=req.method or "",
                            path=path_of(req.url or ""), status=resp.status_code)
    missing = [k for k in keys if k not in body]
    if missing:
        raise ProtocolError(f"answer lacks {', '.join(missing)}", remote=remote, method=req.method or "",
                            path=path_of(req.url or ""), status=resp.status_code)
    return body

