"""Raw HTTP/1.1 exchanges for tests that compare two servers byte for byte.

The request is sent exactly as written (so malformed ones can be too), and the
response is parsed with http.client into (status, header fields as a sorted
list of (lower-case name, value) pairs without Date and Server, body with the
chunked framing removed).
"""

from __future__ import annotations

import http.client
import socket
from typing import Any

DEADLINE = 20.0  # seconds: a bound on any one read

Reply = tuple[int, list[tuple[str, str]], bytes]


class Reader:
    """One buffered reader of a connection for all its responses (pipelined
    responses may arrive in one read), handed to http.client as the socket."""

    def __init__(self, sock: socket.socket) -> None:
        self._file = sock.makefile("rb")

    def makefile(self, mode: str, *args: Any) -> Reader:
        return self

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)

    def close(self) -> None:
        pass  # http.client closes its file at the end of each response

    def reply(self, method: str) -> Reply:
        """The next response (to a `method` request)."""
        response = http.client.HTTPResponse(self, method=method)  # type: ignore[arg-type]
        response.begin()
        body = response.read()
        fields = sorted(
            (name.lower(), value)
            for name, value in response.getheaders()
            if name.lower() not in ("date", "server")
        )
        return response.status, fields, body


def exchange(port: int, raw: bytes, method: str) -> Reply:
    """Send `raw` on a new connection; the one response."""
    with socket.create_connection(("127.0.0.1", port), DEADLINE) as sock:
        sock.sendall(raw)
        return Reader(sock).reply(method)
