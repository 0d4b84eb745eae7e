"""A file server on 127.0.0.1 that also stands in for the Hugging Face Hub, for download tests.

Plain files are served at ``/files/<name>``; Hub files at ``/<owner>/<repo>/resolve/<rev>/<file>``
with the headers ``huggingface_hub.hf_hub_download`` reads (``ETag`` = the sha256 of the bytes, as
the Hub sends for LFS files, ``X-Repo-Commit`` and ``Content-Length``). Any path can be told to
fail: ``404``, ``500``, ``truncate`` (announce the full length, send half), ``slow`` (wait before
answering), ``html`` (an HTML error page with status 200), ``html-as-binary`` (the same page
labelled ``application/octet-stream``), ``corrupt`` (right headers, flipped bytes).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["COMMIT", "HubServer"]

COMMIT = "0123456789abcdef0123456789abcdef01234567"
_HTML = b"<!DOCTYPE html><html><head><title>Error</title></head><body>Quota exceeded</body></html>"


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that give up mid-transfer (timeouts, failed checks) are part of the tests.
        pass


class HubServer:
    """Serve in-memory files over HTTP on a random free port of 127.0.0.1.

    Example:
        >>> server = HubServer().start()
        >>> server.add_file("w.pth", data)
        >>> urllib.request.urlopen(server.url("w.pth")).read() == data
        True
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.failures: dict[str, str] = {}
        self.requests: Counter[tuple[str, str]] = Counter()
        self.slow_seconds = 3.0
        self.chunk_delay = 0.0
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- set-up ------------------------------------------------------------------------------

    def start(self) -> HubServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:
                owner._answer(self, body=False)

            def do_GET(self) -> None:
                owner._answer(self, body=True)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    @property
    def endpoint(self) -> str:
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def add_file(self, name: str, data: bytes) -> str:
        """Serve ``data`` at ``/files/<name>``; returns its URL."""
        self.files[f"/files/{name}"] = data
        return self.url(name)

    def add_hub_file(self, repo_id: str, filename: str, data: bytes) -> None:
        """Serve ``data`` as ``filename`` of Hub repository ``repo_id`` (any revision)."""
        self.files[f"/{repo_id}/{filename}"] = data

    def url(self, name: str) -> str:
        return f"{self.endpoint}/files/{name}"

    def fail(self, key: str, mode: str | None) -> None:
        """Make ``key`` (a file name, or ``owner/repo/file``) fail in ``mode``; ``None`` heals."""
        if mode is None:
            self.failures.pop(key, None)
        else:
            self.failures[key] = mode

    def gets(self, key: str) -> int:
        """How many GET requests asked for ``key`` (a file name, or ``owner/repo/file``)."""
        with self._lock:
            return sum(n for (m, k), n in self.requests.items() if m == "GET" and k == key)

    # -- answering ---------------------------------------------------------------------------

    def _lookup(self, path: str) -> tuple[str, str | None, bool]:
        """Map a request path to (key, storage path or None, is_hub)."""
        path = path.split("?", 1)[0]
        if path.startswith("/files/"):
            return path[len("/files/") :], path, False
        parts = path.strip("/").split("/")
        if len(parts) >= 5 and parts[2] == "resolve":
            repo = "/".join(parts[:2])
            filename = "/".join(parts[4:])
            return f"{repo}/{filename}", f"/{repo}/{filename}", True
        return path, None, False

    def _answer(self, h: BaseHTTPRequestHandler, *, body: bool) -> None:
        key, storage, hub = self._lookup(h.path)
        with self._lock:
            self.requests[(h.command, key)] += 1
        mode = self.failures.get(key)
        data = self.files.get(storage) if storage else None
        if mode == "slow":
            time.sleep(self.slow_seconds)
        if mode == "404" or data is None:
            h.send_response(404)
            if hub:
                h.send_header("X-Error-Code", "EntryNotFound")
                h.send_header("X-Repo-Commit", COMMIT)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        if mode == "500":
            h.send_response(500)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        if mode in ("html", "html-as-binary"):
            h.send_response(200)
            h.send_header(
                "Content-Type", "text/html" if mode == "html" else "application/octet-stream"
            )
            h.send_header("Content-Length", str(len(_HTML)))
            h.end_headers()
            if body:
                h.wfile.write(_HTML)
            return
        h.send_response(200)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Content-Length", str(len(data)))
        if hub:
            h.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
            h.send_header("X-Repo-Commit", COMMIT)
        h.end_headers()
        if not body:
            return
        if mode == "truncate":
            data = data[: len(data) // 2]
        elif mode == "corrupt":
            data = bytes(b ^ 0xFF for b in data)
        step = 1 << 14
        for i in range(0, len(data), step):
            h.wfile.write(data[i : i + step])
            if self.chunk_delay:
                time.sleep(self.chunk_delay)
        h.wfile.flush()
        if mode == "truncate":
            h.close_connection = True
