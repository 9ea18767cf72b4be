"""A fault-injecting HTTP proxy for S3 tests: threaded, on 127.0.0.1, in front of moto.

Every request is forwarded unchanged to the upstream server, except the ones a rule picks: the
Nth request (counting from 1) that matches the rule's predicate is answered with an S3
``InternalError`` (HTTP 500) and never reaches the upstream. Use it with ``max_attempts: 1`` in
the route so botocore does not retry the failure away::

    with FaultProxy(moto.url) as proxy:
        proxy.fail(is_copy, nth={2, 5})
        ...  # a configuration whose endpoint_url is proxy.url
        assert proxy.failed == 2

A hold rule stands in for a client killed midway: matching requests wait (never reaching the
upstream) until ``release()``, then get the same error; ``wait_held(n)`` blocks until n wait.
A cut rule stands in for a connection dropped mid-body: the upstream's answer goes back with its
headers and half its body, then the connection is closed.
"""

from __future__ import annotations

import http.client
import sys
import threading
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

__all__ = [
    "FaultProxy",
    "Request",
    "is_any_copy",
    "is_complete",
    "is_copy",
    "is_delete",
    "is_get",
    "is_list_parts",
    "is_part_copy",
    "is_part_upload",
    "is_put",
]


class Request:
    """What a rule sees of one request."""

    def __init__(self, method: str, path: str, headers: dict[str, str]) -> None:
        self.method = method
        self.path = path
        self.query = urllib.parse.parse_qs(
            urllib.parse.urlsplit(path).query, keep_blank_values=True
        )
        self.headers = {k.lower(): v for k, v in headers.items()}


def is_copy(request: Request) -> bool:
    """A ``copy_object`` (a PUT with a copy source, not a part)."""
    return is_put(request) and "x-amz-copy-source" in request.headers and not _is_part(request)


def is_part_copy(request: Request) -> bool:
    """An ``upload_part_copy``."""
    return is_put(request) and "x-amz-copy-source" in request.headers and _is_part(request)


def is_part_upload(request: Request) -> bool:
    """An ``upload_part`` with a body (not a copy)."""
    return is_put(request) and "x-amz-copy-source" not in request.headers and _is_part(request)


def is_any_copy(request: Request) -> bool:
    """A ``copy_object`` or an ``upload_part_copy``."""
    return is_put(request) and "x-amz-copy-source" in request.headers


def is_delete(request: Request) -> bool:
    """A ``delete_object`` (DELETE) or ``delete_objects`` (POST ``?delete``)."""
    return request.method == "DELETE" or (request.method == "POST" and "delete" in request.query)


def is_get(request: Request) -> bool:
    """Any GET (object reads, listings)."""
    return request.method == "GET"


def is_put(request: Request) -> bool:
    """Any PUT."""
    return request.method == "PUT"


def is_complete(request: Request) -> bool:
    """A ``complete_multipart_upload`` (POST with an upload id)."""
    return request.method == "POST" and "uploadId" in request.query


def is_list_parts(request: Request) -> bool:
    """A ``list_parts`` (GET with an upload id and no part number)."""
    return request.method == "GET" and "uploadId" in request.query and not _is_part(request)


def _is_part(request: Request) -> bool:
    return "partNumber" in request.query and "uploadId" in request.query


_ERROR = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code>'
    b"<Message>injected fault</Message></Error>"
)
_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection"}


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        """Quiet about clients gone away (a killed client's held requests); loud otherwise."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class FaultProxy:
    """A threaded proxy in front of ``upstream`` that fails chosen requests."""

    def __init__(self, upstream: str) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        self._upstream = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self._lock = threading.Lock()
        # (predicate, whether its Nth match fails, [matches so far])
        self._rules: list[tuple[Callable[[Request], bool], Callable[[int], bool], list[int]]] = []
        self._holds: list[Callable[[Request], bool]] = []
        self._corrupt: list[Callable[[Request], bool]] = []
        self._after: list[tuple[Callable[[Request], bool], Callable[[Request], None]]] = []
        self._rewrite: list[tuple[Callable[[Request], bool], Callable[[bytes], bytes]]] = []
        self._cut: list[Callable[[Request], bool]] = []
        self._held = threading.Condition(self._lock)
        self._released = threading.Event()
        self.held = 0
        self.failed = 0
        self.forwarded = 0
        self.cut_short = 0
        self._server = _Server(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """Where clients send their requests."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def fail(self, predicate: Callable[[Request], bool], nth: set[int]) -> None:
        """Fail the requests matching ``predicate`` whose match count (from 1) is in ``nth``."""
        chosen = set(nth)
        with self._lock:
            self._rules.append((predicate, chosen.__contains__, [0]))

    def fail_from(self, predicate: Callable[[Request], bool], nth: int) -> None:
        """Fail every request matching ``predicate`` from its ``nth`` match on (retries too,
        so the operation fails midway)."""
        with self._lock:
            self._rules.append((predicate, lambda count: count >= nth, [0]))

    def matched(self, predicate: Callable[[Request], bool]) -> int:
        """How many requests the rules with ``predicate`` have seen."""
        with self._lock:
            return sum(seen[0] for rule, _fails, seen in self._rules if rule is predicate)

    def corrupt(self, predicate: Callable[[Request], bool]) -> None:
        """Flip the first byte of the upstream's answer to requests matching ``predicate``
        (same length, same headers: bytes changed on the way)."""
        with self._lock:
            self._corrupt.append(predicate)

    def after_once(
        self, predicate: Callable[[Request], bool], action: Callable[[Request], None]
    ) -> None:
        """Run ``action`` once, on the first request matching ``predicate``, after the upstream
        has answered it and before that answer is passed on: something happens between two
        steps of the client, deterministically (e.g. a part re-uploaded between a listing of
        the parts and the completion that trusts it)."""
        with self._lock:
            self._after.append((predicate, action))

    def rewrite_once(
        self, predicate: Callable[[Request], bool], change: Callable[[bytes], bytes]
    ) -> None:
        """Forward the body of the first request matching ``predicate`` as ``change`` makes it
        (a store that reads a request differently from how it was sent)."""
        with self._lock:
            self._rewrite.append((predicate, change))

    def _rewritten(self, request: Request, body: bytes) -> bytes:
        with self._lock:
            due = [rule for rule in self._rewrite if rule[0](request)]
            for rule in due:
                self._rewrite.remove(rule)
        for _predicate, change in due:
            body = change(body)
        return body

    def _run_after(self, request: Request) -> None:
        with self._lock:
            due = [rule for rule in self._after if rule[0](request)]
            for rule in due:
                self._after.remove(rule)
        for _predicate, action in due:
            action(request)

    def _corrupts(self, request: Request) -> bool:
        with self._lock:
            return any(predicate(request) for predicate in self._corrupt)

    def cut_once(self, predicate: Callable[[Request], bool]) -> None:
        """Drop the connection halfway through the body of the upstream's answer to the first
        request matching ``predicate`` (its headers announce the whole length)."""
        with self._lock:
            self._cut.append(predicate)

    def _cuts(self, request: Request) -> bool:
        with self._lock:
            due = [predicate for predicate in self._cut if predicate(request)]
            for predicate in due[:1]:
                self._cut.remove(predicate)
                self.cut_short += 1
        return bool(due)

    def hold(self, predicate: Callable[[Request], bool]) -> None:
        """Keep every request matching ``predicate`` waiting until :meth:`release`."""
        with self._lock:
            self._holds.append(predicate)

    def wait_held(self, count: int, timeout: float = 120) -> bool:
        """Whether ``count`` requests are held within ``timeout`` seconds."""
        with self._held:
            return self._held.wait_for(lambda: self.held >= count, timeout=timeout)

    def release(self) -> None:
        """Answer the held requests with the injected error and hold no more."""
        with self._lock:
            self._holds.clear()
        self._released.set()

    def clear(self) -> None:
        """Forward everything unchanged from now on."""
        with self._lock:
            self._rules.clear()
            self._corrupt.clear()
            self._after.clear()
            self._rewrite.clear()
            self._cut.clear()

    def _should_fail(self, request: Request) -> bool:
        with self._lock:
            if any(predicate(request) for predicate in self._holds):
                self.held += 1
                self._held.notify_all()
                holding = True
            else:
                holding = False
        if holding:
            self._released.wait(timeout=300)
            return True
        with self._lock:
            for predicate, fails, seen in self._rules:
                if predicate(request):
                    seen[0] += 1
                    if fails(seen[0]):
                        self.failed += 1
                        return True
            self.forwarded += 1
            return False

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Request(self.command, self.path, dict(self.headers.items()))
                if proxy._should_fail(request):
                    self.send_response(500)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(_ERROR)))
                    self.end_headers()
                    self.wfile.write(_ERROR)
                    return
                proxy._relay(self, request, body)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        return Handler

    def _relay(self, handler: BaseHTTPRequestHandler, request: Request, body: bytes) -> None:
        """Send ``request`` upstream and its answer back to ``handler``'s client (the body
        rewritten, the answer corrupted, as the rules say)."""
        upstream = http.client.HTTPConnection(*self._upstream, timeout=60)
        try:
            headers = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP}
            changed = self._rewritten(request, body)
            if changed != body:
                body = changed
                headers = {k: v for k, v in headers.items() if k.lower() != "content-length"}
            upstream.request(handler.command, handler.path, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
            if data and self._corrupts(request):
                data = bytes([data[0] ^ 0xFF]) + data[1:]
            self._run_after(request)
            handler.send_response(response.status)
            head = handler.command == "HEAD"
            for key, value in response.getheaders():
                lower = key.lower()
                if lower not in _HOP and (head or lower != "content-length"):
                    handler.send_header(key, value)
            if not head:
                handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            if not head and data and self._cuts(request):
                handler.wfile.write(data[: len(data) // 2])
                handler.close_connection = True  # the rest never comes
            elif not head:
                handler.wfile.write(data)
        finally:
            upstream.close()
