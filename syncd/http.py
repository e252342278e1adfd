"""One factory for HTTP sessions and one translation of HTTP failures into syncd errors.

urllib3's ``Retry`` does the transient retries (every method, 429 and 5xx, ``Retry-After`` honoured,
jittered exponential backoff); what is left after it is mapped once, here, to the error tree.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import orjson
import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from syncd import __version__
from syncd.config import HttpConfig
from syncd.errors import (
    AnswerCut,
    ProtocolError,
    Redirected,
    RemoteRejected,
    RemoteUnavailable,
    SessionExpired,
    TlsFailed,
)

log = logging.getLogger(__name__)
USER_AGENT = f"syncd/{__version__} (+https://github.com/syncd)"
# The most one answer may hold. A Salesforce page is at most 2,000 records (a few MB); a remote that
# sends more is broken or hostile, and holding it would cost the memory of the whole service.
MAX_ANSWER_BYTES = 64 * 1024 * 1024
READ_CHUNK = 1024 * 1024
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class CappedRetry(Retry):
    """``Retry`` that honours ``Retry-After`` but never waits longer than ``backoff_max``:
    a hostile or confused remote must not park a run for hours. Each retry is logged by syncd, in one
    line naming the method, host, path (never the query: it holds SOQL), the status, attempt n of m and
    the wait; urllib3's own retry warnings are silenced in ``logs.setup``."""

    last: tuple[str, str, str, str] | None = None

    def get_retry_after(self, response: Any) -> float | None:
        after = super().get_retry_after(response)
        return None if after is None else min(after, self.backoff_max)

    def increment(self, method: str | None = None, url: str | None = None, response: Any = None,
                  error: Exception | None = None, _pool: Any = None, _stacktrace: Any = None) -> CappedRetry:
        new = super().increment(method, url, response, error, _pool, _stacktrace)
        what = str(response.status) if response is not None else type(error).__name__ if error else "failed"
        new.last = (method or "?", str(getattr(_pool, "host", "?")), urlsplit(url or "").path or "/", what)
        return new

    def sleep(self, response: Any = None) -> None:
        wait = self.get_retry_after(response) if self.respect_retry_after_header and response is not None else None
        if wait is None:
            wait = self.get_backoff_time()
        method, host, path, what = self.last or ("?", "?", "?", "failed")
        attempt = len(self.history) + 1
        remaining = self.total if isinstance(self.total, int) and not isinstance(self.total, bool) else 0
        log.warning("%s %s%s: %s; retrying (attempt %d of %d) in %.1fs", method, host, path, what, attempt,
                    attempt + remaining, wait, extra={"event": "http_retry", "error": what})
        if wait > 0:
            time.sleep(wait)


class AnswerTooSlow(Exception):
    """The whole answer did not arrive within its deadline (a remote trickling bytes)."""


class AnswerTooLarge(Exception):
    """The answer is larger than one answer may be."""


class TimeoutSession(requests.Session):
    """A session whose every request has a timeout unless one is given, follows no redirect, and
    reads its answers whole against one deadline (``read_timeout_seconds`` bounds the answer, not each
    read) and a size cap; read in large pieces, not requests' 10 KB ones (~1 µs of CPU per lead)."""

    def __init__(self, timeout: tuple[float, float], max_answer_bytes: int = MAX_ANSWER_BYTES) -> None:
        super().__init__()
        self.default_timeout = timeout
        self.max_answer_bytes = max_answer_bytes
        self.retries = 0
        self.backoff = (0.5, 30.0)  # factor, cap: the same policy urllib3's Retry applies

    @property
    def worst_case_seconds(self) -> float:
        """The longest one ``send`` may wait, every attempt and back-off included (the watchdog's bound)."""
        connect, read = self.default_timeout
        return (self.retries + 1) * (connect + read) + self.retries * self.backoff[1]

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.default_timeout)
        kwargs["allow_redirects"] = False  # a 3xx is answered by send(), never followed
        if kwargs.get("stream"):
            return super().request(method, url, *args, **kwargs)
        kwargs["stream"] = True
        timeout = kwargs["timeout"]
        budget = float(timeout[1] if isinstance(timeout, tuple) else timeout)
        started = time.monotonic()
        resp = super().request(method, url, *args, **kwargs)
        read_whole(resp, started + budget, self.max_answer_bytes)
        return resp


def read_whole(resp: requests.Response, deadline: float = float("inf"), max_bytes: int = MAX_ANSWER_BYTES) -> None:
    """Read a streamed answer's whole body now, as ``stream=False`` would, failing the same way, within
    ``deadline`` (monotonic) and ``max_bytes``."""
    # BytesIO, not a list joined at the end: getvalue() hands over its buffer without a copy, so a Bulk
    # chunk of 12 MB peaks at about 13 MB, not 24.
    body = io.BytesIO()
    size = 0
    try:
        while True:
            if time.monotonic() > deadline:
                resp.close()
                raise AnswerTooSlow()
            chunk = resp.raw.read1(READ_CHUNK, decode_content=True)
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:
                resp.close()
                raise AnswerTooLarge()
            body.write(chunk)
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
    resp._content = body.getvalue()
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
    session.retries, session.backoff = retries, (backoff_factor, backoff_max)
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


# Each thread's pending network call: the monotonic time by which it must have ended. The pacer
# thread reads it while sync threads write it, hence the lock.
_waits: dict[int, float] = {}
_waits_lock = threading.Lock()


def network_wait_until() -> float:
    """Until when some thread may legitimately still be waiting on a remote (0: none is)."""
    with _waits_lock:
        return max(_waits.values(), default=0.0)


def send(session: requests.Session, method: str, url: str, remote: str, **kwargs: Any) -> requests.Response:
    """Send one request; failures that survived the retries become syncd errors naming the remote.

    A redirect is never followed: the request (and a secret in it) would go to a host nobody
    configured. An answer slower than its deadline is retried like a timeout.
    """
    worst = getattr(session, "worst_case_seconds", 0.0)
    retries = getattr(session, "retries", 0)
    factor, cap = getattr(session, "backoff", (0.5, 30.0))
    thread = threading.get_ident()
    with _waits_lock:
        _waits[thread] = time.monotonic() + worst
    kw: dict[str, Any] = {"remote": remote, "method": method, "path": path_of(url)}
    try:
        for attempt in range(retries + 1):
            try:
                resp = session.request(method, url, **kwargs)
                break
            except AnswerTooSlow:
                if attempt >= retries:
                    raise RemoteUnavailable("the whole answer did not arrive within read_timeout_seconds "
                                            f"({attempt + 1} attempts)", **kw) from None
                wait = min(cap, factor * 2 ** attempt)
                log.warning("%s %s%s: the whole answer did not arrive within read_timeout_seconds; retrying "
                            "(attempt %d of %d) in %.1fs", method, urlsplit(url).hostname, kw["path"], attempt + 2,
                            retries + 1, wait)
                time.sleep(wait)
    except AnswerTooLarge:
        limit = getattr(session, "max_answer_bytes", MAX_ANSWER_BYTES)
        raise ProtocolError(f"the answer is larger than {limit:,} bytes, more than one answer may hold; refused",
                            **kw) from None
    except requests.exceptions.SSLError as e:
        host = urlsplit(url).hostname or "?"
        raise TlsFailed(f"TLS with {host} failed: its certificate is not trusted or the handshake was refused "
                        f"({_reason(e)})", **kw) from None
    except requests.exceptions.RetryError as e:
        raise RemoteUnavailable("gave up after repeated retries", **kw) from e
    except requests.exceptions.Timeout as e:
        raise RemoteUnavailable("timed out", **kw) from e
    except requests.exceptions.ConnectionError as e:
        host = urlsplit(url).hostname or "?"
        raise RemoteUnavailable(f"connection to {host} failed", **kw) from e
    except requests.exceptions.ChunkedEncodingError as e:
        raise AnswerCut("the answer broke off before its end", **kw) from e
    except requests.exceptions.RequestException as e:
        raise RemoteUnavailable(type(e).__name__, **kw) from e
    finally:
        with _waits_lock:
            _waits.pop(thread, None)
    if 300 <= resp.status_code < 400:
        target = urlsplit(resp.headers.get("Location", "")).hostname or urlsplit(url).hostname or "?"
        raise Redirected(f"redirected to {target}; syncd follows no redirect (check the configured URL)",
                         status=resp.status_code, **kw)
    return resp


def _reason(e: Exception) -> str:
    """The certificate problem in a few words (OpenSSL's reason, never a URL with a query)."""
    text = str(e)
    for marker in ("certificate verify failed: ", "SSLError("):
        if marker in text:
            return text.split(marker, 1)[1].split(")")[0].split("(")[0].strip()[:80] or "TLS error"
    return "TLS error"


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


# orjson reads a page of 2,000 leads about three times faster than the standard library, and the same
# way, except: what it refuses (NaN, lone surrogates, a BOM, deep nesting) and an integer beyond 64 bits
# (a float to it), possible only where 19 digits follow each other. Those bodies, and any not UTF-8, are
# read by ``requests`` as before.
_DIGIT_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_NINETEEN_DIGITS = b"0" * 19


def _decoded(resp: requests.Response) -> Any:
    encoding = (resp.encoding or "utf-8").lower()
    if encoding in ("utf-8", "utf8"):
        content = resp.content
        if _NINETEEN_DIGITS not in content.translate(_DIGIT_TO_ZERO):
            try:
                return orjson.loads(content)
            except orjson.JSONDecodeError:
                pass
    return resp.json()


def json_body(resp: requests.Response, remote: str) -> Any:
    try:
        return _decoded(resp)
    except RecursionError:
        req = resp.request
        raise ProtocolError("answer nests too deeply to be a documented shape", remote=remote,
                            method=req.method or "", path=path_of(req.url or ""), status=resp.status_code) from None
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

