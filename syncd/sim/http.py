"""HTTP plumbing for the simulator: a threaded loopback server and a tiny router."""

from __future__ import annotations

import email.utils
import json
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import orjson


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)
    target_bytes: int = 0  # length of the request line's path and query

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8")) if self.body else None

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode("utf-8"), keep_blank_values=True).items()}

    def arg(self, name: str, default: str = "") -> str:
        return self.query.get(name, [default])[0]


@dataclass
class Response:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None  # sent as is (for deliberately broken answers)
    stream: Iterable[bytes] | None = None  # a large body, sent in pieces as they are made (chunked)
    declared_length: int | None = None  # a Content-Length other than the body's (an answer cut short)
    trickle: float = 0.0  # seconds between each byte of the body (a remote that sends one byte at a time)
    not_before: float = 0.0  # time.monotonic() before which the answer is not sent (the call's latency)


Handler = Callable[[Request], Response]


# Compact, as Salesforce and CXone write it. What orjson would write where the standard library refuses
# (a datetime, a dataclass) is refused to it too; what it refuses (a lone surrogate, an integer beyond
# 64 bits, a key that is not a string) goes to the standard library.
_STRICT = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS


def _encode(body: Any) -> bytes:
    try:
        return orjson.dumps(body, option=_STRICT)
    except orjson.JSONEncodeError:
        pass
    try:
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: JSON can still carry it, escaped
        return json.dumps(body, separators=(",", ":")).encode("ascii")


class Router:
    def __init__(self) -> None:
        self.routes: list[tuple[str, re.Pattern[str], str, Handler]] = []

    def add(self, method: str, pattern: str, name: str, handler: Handler) -> None:
        rx = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "$")
        self.routes.append((method, rx, name, handler))

    def match(self, method: str, path: str) -> tuple[str, Handler, dict[str, str]] | None:
        for m, rx, name, handler in self.routes:
            found = rx.match(path)
            if found and m == method:
                return name, handler, {k: unquote(v) for k, v in found.groupdict().items()}
        return None


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-answer (a killed sync, a cut download) is normal here.
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class Server:
    """Serve ``dispatch`` on 127.0.0.1 in daemon threads; ``port=0`` picks a free port."""

    def __init__(self, dispatch: Callable[[Request], tuple[Response, Callable[[], None] | None]],
                 host: str = "127.0.0.1", port: int = 0, now: Callable[[], datetime] | None = None) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # An answer goes as its headers, then its body: with Nagle's algorithm the body would wait
            # for the client's (delayed) ACK of the headers, 40 ms on Linux, which no remote adds.
            disable_nagle_algorithm = True

            def date_time_string(self, timestamp: float | None = None) -> str:
                # The Date header tells the remote's own time: the simulator's clock, not the host's.
                when = now().timestamp() if now is not None and timestamp is None else timestamp
                return email.utils.formatdate(when, usegmt=True)

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                try:
                    self._serve()
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client died mid-exchange (a kill -9 test): not our error

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                req = Request(self.command, parts.path, parse_qs(parts.query, keep_blank_values=True),
                              {k.lower(): v for k, v in self.headers.items()}, body, target_bytes=len(self.path))
                resp, after = outer.dispatch(req)
                if after is not None:  # a fault that drops the connection or stalls
                    after()
                    self.close_connection = True
                    return
                if resp.stream is not None:
                    self._hold(resp)
                    self._send_stream(resp)
                    return
                data = resp.raw if resp.raw is not None else b"" if resp.body is None else _encode(resp.body)
                self._hold(resp)
                self.send_response(resp.status)
                if resp.raw is None and resp.body is not None:
                    self.send_header("Content-Type", "application/json;charset=UTF-8")
                for k, v in resp.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(resp.declared_length or len(data)))
                self.end_headers()
                if resp.trickle:
                    for i in range(len(data)):
                        self.wfile.write(data[i:i + 1])
                        self.wfile.flush()
                        time.sleep(resp.trickle)
                else:
                    self.wfile.write(data)
                if resp.declared_length is not None:
                    self.close_connection = True  # the rest never comes

            @staticmethod
            def _hold(resp: Response) -> None:
                wait = resp.not_before - time.monotonic()
                if wait > 0:
                    time.sleep(wait)

            def _send_stream(self, resp: Response) -> None:
                assert resp.stream is not None
                self.send_response(resp.status)
                self.send_header("Content-Type", "application/json;charset=UTF-8")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for piece in resp.stream:
                    if piece:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.write(b"0\r\n\r\n")

            do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _handle

        self.dispatch = dispatch
        self.httpd = _QuietServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> str:
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="syncd-sim", daemon=True)
        self.thread.start()
        return self.url

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
