"""Test an application over a real socket: `TestServer` and `TestClient`.

    async with TestClient(app) as client:
        resp = await client.get("/hello/world")
        assert resp.status == 200
        assert resp.text == "hello, world!"

The server listens on 127.0.0.1 with a free port and runs the application's
full lifecycle (startup, cleanup); the client speaks HTTP/1.1 over one
keep-alive connection (a new one if the server closed it) and reads each
response whole, with `Content-Length` or chunked framing. Nothing is mocked:
what the test sees is what a browser would.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping
from typing import Any

from .http.headers import Headers
from .web.app import Application
from .web.runner import AppRunner, TCPSite

__all__ = ["ClientResponse", "TestClient", "TestServer"]


class ClientResponse:
    """A response as the test client read it."""

    __slots__ = ("body", "headers", "reason", "status", "version")

    def __init__(
        self, status: int, reason: str, headers: Headers, body: bytes, version: str
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.version = version

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<ClientResponse {self.status} {self.reason} {len(self.body)} bytes>"


class TestServer:
    """Serves an application on 127.0.0.1 (a free port) while in use."""

    __test__ = False  # not a pytest test class

    def __init__(self, app: Application, *, host: str = "127.0.0.1", **runner_kwargs: Any):
        self.app = app
        self.host = host
        self.port = 0
        self._runner = AppRunner(app, **runner_kwargs)

    async def start(self) -> None:
        await self._runner.setup()
        site = TCPSite(self._runner, self.host, 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def close(self) -> None:
        await self._runner.cleanup()

    async def __aenter__(self) -> TestServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class TestClient:
    """A small HTTP/1.1 client bound to a `TestServer` (made from an app)."""

    __test__ = False

    def __init__(self, app_or_server: Application | TestServer) -> None:
        self.server = (
            app_or_server if isinstance(app_or_server, TestServer) else TestServer(app_or_server)
        )
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    @property
    def port(self) -> int:
        return self.server.port

    async def __aenter__(self) -> TestClient:
        await self.server.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._disconnect()
        await self.server.close()

    async def _disconnect(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except ConnectionError:
                pass

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if (
            self._writer is None
            or self._writer.is_closing()
            or self._reader is None
            or (self._reader.at_eof())
        ):
            await self._disconnect()
            self._reader, self._writer = await asyncio.open_connection(
                self.server.host, self.server.port
            )
        return self._reader, self._writer

    async def request(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        body: bytes | str = b"",
        json_body: Any = None,
    ) -> ClientResponse:
        """Send one request and read its response whole."""
        if json_body is not None:
            body = json.dumps(json_body)
            headers = [*_pairs(headers), ("Content-Type", "application/json")]
        data = body.encode() if isinstance(body, str) else body
        pairs = _pairs(headers)
        names = {name.lower() for name, _ in pairs}
        lines = [f"{method} {path} HTTP/1.1"]
        if "host" not in names:
            lines.append(f"Host: {self.server.host}:{self.server.port}")
        framed = "content-length" in names or "transfer-encoding" in names
        if (data or method in ("POST", "PUT", "PATCH")) and not framed:
            lines.append(f"Content-Length: {len(data)}")
        lines += [f"{name}: {value}" for name, value in pairs]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        reader, writer = await self._connect()
        writer.write(head + data)
        await writer.drain()
        response = await read_response(reader, method)
        connection = (response.headers.get("Connection") or "").lower()
        if connection == "close":
            await self._disconnect()
        return response

    async def get(self, path: str, **kwargs: Any) -> ClientResponse:
        return await self.request("GET", path, **kwargs)

    async def head(self, path: str, **kwargs: Any) -> ClientResponse:
        return await self.request("HEAD", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> ClientResponse:
        return await self.request("POST", path, **kwargs)

    async def put(self, path: str, **kwargs: Any) -> ClientResponse:
        return await self.request("PUT", path, **kwargs)

    async def patch(self, path: str, **kwargs: Any) -> ClientResponse:
        return await self.request("PATCH", path, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> ClientResponse:
        return await self.request("DELETE", path, **kwargs)

    async def options(self, path: str, **kwargs: Any) -> ClientResponse:
        return await self.request("OPTIONS", path, **kwargs)


def _pairs(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return list(headers.items()) if isinstance(headers, Mapping) else list(headers)


async def read_response(reader: asyncio.StreamReader, method: str = "GET") -> ClientResponse:
    """Read one HTTP/1.1 response (1xx interim responses are skipped)."""
    while True:
        status_line = (await reader.readuntil(b"\r\n")).decode("latin-1").rstrip("\r\n")
        version, _, rest = status_line.partition(" ")
        code, _, reason = rest.partition(" ")
        raw: list[tuple[bytes, bytes]] = []
        while True:
            line = await reader.readuntil(b"\r\n")
            if line == b"\r\n":
                break
            name, _, value = line.rstrip(b"\r\n").partition(b":")
            raw.append((name, value.strip()))
        status = int(code)
        if 100 <= status < 200 and status != 101:
            continue
        break
    headers = Headers(raw)
    if method == "HEAD" or status in (204, 304) or status < 200:
        body = b""
    elif (headers.get("Transfer-Encoding") or "").lower() == "chunked":
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":
                    pass
                break
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(parts)
    elif headers.get("Content-Length") is not None:
        body = await reader.readexactly(int(headers["Content-Length"]))
    else:
        body = await reader.read()
    return ClientResponse(status, reason, headers, body, version)
