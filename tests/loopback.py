"""A loopback HTTP server in front of the provider fakes (`holder["fakes"].respond`), for tests."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def serve_fakes(holder: dict[str, Any]) -> tuple[ThreadingHTTPServer, str]:
    """Start the server on a free port; whatever `holder["fakes"]` is when a request arrives answers it."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _any(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, headers, payload = holder["fakes"].respond(self.command, self.path, dict(self.headers), body)
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_DELETE = _any

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"
