"""A small fault-injecting HTTP proxy in front of moto's S3 server, for the lifecycle tests.

Every request is forwarded unchanged, except that from the Nth request of a kind on, requests
of that kind are answered with S3's ``500 InternalError`` (retries fail too, so the operation
fails midway). Kinds: ``copy`` (CopyObject / UploadPartCopy: a PUT with ``x-amz-copy-source``)
and ``delete`` (DeleteObjects: a POST to ``?delete``; DeleteObject: a DELETE).
"""

from __future__ import annotations

import http.client
import threading
import urllib.parse
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FaultProxy"]

_ERROR = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code>'
    b"<Message>injected fault</Message></Error>"
)


class FaultProxy:
    """Listens on 127.0.0.1; ``url`` is its endpoint."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urllib.parse.urlsplit(upstream)
        self.counts: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self._fail_from: dict[str, int] = {}
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _handle(self) -> None:
                proxy._forward(self)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def fail_from(self, kind: str, nth: int) -> None:
        """From the ``nth`` request of ``kind`` counted from now on, answer 500."""
        with self._lock:
            self.counts[kind] = 0
            self._fail_from[kind] = nth

    def heal(self) -> None:
        """Forward everything again."""
        with self._lock:
            self._fail_from.clear()

    def stop(self) -> None:
        """Stop listening."""
        self._server.shutdown()
        self._server.server_close()

    @staticmethod
    def kind(handler: BaseHTTPRequestHandler) -> str:
        """What an S3 request is, as far as the faults go."""
        query = urllib.parse.urlsplit(handler.path).query
        if handler.command == "PUT" and handler.headers.get("x-amz-copy-source"):
            return "copy"
        if handler.command == "DELETE" or (handler.command == "POST" and "delete" in query):
            return "delete"
        return handler.command.lower()

    def _forward(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        kind = self.kind(handler)
        with self._lock:
            self.counts[kind] += 1
            nth = self._fail_from.get(kind)
            fail = nth is not None and self.counts[kind] >= nth
            if fail:
                self.failed[kind] += 1
        if fail:
            handler.send_response(500)
            handler.send_header("Content-Type", "application/xml")
            handler.send_header("Content-Length", str(len(_ERROR)))
            handler.end_headers()
            handler.wfile.write(_ERROR)
            return
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=60)
        try:
            headers = {k: v for k, v in handler.headers.items() if k.lower() != "connection"}
            conn.request(handler.command, handler.path, body=body, headers=headers)
            answer = conn.getresponse()
            data = answer.read()
            handler.send_response(answer.status)
            skip = {"transfer-encoding", "connection"}
            if handler.command != "HEAD":  # a HEAD's length is the object's
                skip.add("content-length")
                handler.send_header("Content-Length", str(len(data)))
            for key, value in answer.getheaders():
                if key.lower() not in skip:
                    handler.send_header(key, value)
            handler.end_headers()
            if handler.command != "HEAD":
                handler.wfile.write(data)
        finally:
            conn.close()
