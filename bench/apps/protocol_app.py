"""The reference ceiling: a bare `asyncio.Protocol` on the stdlib loop, no framework.

    python -m bench.apps.protocol_app --port PORT [--backlog N]

Just enough HTTP/1.1 for wrk: every request head (GET, no body) gets an
answer; `/hello/{name}` and `/sleep/{name}` answer the same bytes as the
other apps (less `Date` and `Server`), anything else is a 404. No header
parsing, no Request or Response objects, no Task per request: what is left is
the loop and the transport, the cost any Python server pays.
"""

from __future__ import annotations

import asyncio
import html
from urllib.parse import unquote

from . import CONTENT_TYPE, SLEEP, launcher_args

_NOT_FOUND = (
    b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: 14\r\n\r\n404: Not Found"
)


def _answer(name: bytes) -> bytes:
    body = f"<h1>hello, {html.escape(unquote(name.decode('latin-1')))}!</h1>".encode()
    return b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s" % (
        CONTENT_TYPE.encode("latin-1"),
        len(body),
        body,
    )


class HelloProtocol(asyncio.Protocol):
    """Answers each complete request head in `data_received` (sleeping ones later)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        start = 0
        while (end := buffer.find(b"\r\n\r\n", start)) >= 0:
            line = buffer[start : buffer.find(b"\r\n", start)]
            start = end + 4
            parts = line.split(b" ")
            path = parts[1].partition(b"?")[0] if len(parts) == 3 else b""
            name = path[7:]
            if not name or b"/" in name:
                self.transport.write(_NOT_FOUND)
            elif path.startswith(b"/hello/"):
                self.transport.write(_answer(name))
            elif path.startswith(b"/sleep/"):
                asyncio.get_running_loop().call_later(SLEEP, self._late, _answer(name))
            else:
                self.transport.write(_NOT_FOUND)
        self.buffer = buffer[start:]

    def _late(self, response: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(response)


async def serve(host: str, port: int, backlog: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(HelloProtocol, host, port, backlog=backlog)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    args = launcher_args(__doc__.split("\n")[0], argv)
    try:
        asyncio.run(serve(args.host, args.port, args.backlog))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
