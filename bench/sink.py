"""A local webhook that receives apprise `json://` notifications and notes when each arrived.

The benchmark's own copy of tests/support/notify_sink.py (benchmarks do not
import test code), plus a receive timestamp taken before the body is parsed and
an optional callback so the benchmark can react (acknowledge) at once. `fail`
makes it answer 500, a channel outage (bench/critical_day.py).
"""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    at: float  # time.time() when the request line and headers had arrived
    title: str
    message: str


class NotifySink:
    def __init__(self, on_receive: Callable[[Received], None] | None = None) -> None:
        self.received: list[Received] = []
        self.fail = False
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                at = time.time()
                body: dict[str, Any] = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                if sink.fail:
                    self.send_response(500)
                    self.end_headers()
                    return
                self.send_response(200)
                self.end_headers()
                item = Received(at=at, title=body.get("title", ""), message=body.get("message", ""))
                sink.received.append(item)
                if on_receive is not None:
                    on_receive(item)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.server.server_address[1]}/notify"

    def __enter__(self) -> "NotifySink":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
