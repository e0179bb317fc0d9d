"""Behind proxies, and under load: trusted forwarding headers (RFC 7239
`Forwarded`, `X-Forwarded-*`), the PROXY protocol v1/v2, the concurrency
limit and the connection cap. The rules byte by byte, then over real
sockets on both loops, for the native framework, ASGI and WSGI alike."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import struct
from typing import Any

import pytest

from treadle import web
from treadle.asgi import ASGIRunner
from treadle.http.headers import Headers
from treadle.http.proxy import Forwarded, TrustedProxies, read_proxy_header, resolve
from treadle.http.runner import ServerRunner, TCPSite
from treadle.testing import read_response
from treadle.wsgi import WSGIRunner

from ..conftest import run


def headers(*pairs: tuple[str, str]) -> Headers:
    return Headers([(n.encode(), v.encode()) for n, v in pairs])


# -- who is trusted --------------------------------------------------------------------------


def test_trusted_proxies() -> None:
    trusted = TrustedProxies("10.0.0.1, 192.168.0.0/16,::1, 2001:db8::/32")
    assert "10.0.0.1" in trusted and "10.0.0.2" not in trusted
    assert "192.168.44.3" in trusted and "192.169.0.1" not in trusted
    assert "::1" in trusted and "2001:db8::7" in trusted and "2001:db9::1" not in trusted
    assert "::ffff:192.168.1.1" in trusted  # an IPv4 peer on a dual-stack socket
    assert "not an ip" not in trusted
    assert "1.2.3.4" in TrustedProxies("*")
    assert not TrustedProxies("")
    for bad in ("10.0.0.300", "10.0.0.0/33", "example.com"):
        with pytest.raises(ValueError, match="not an IP"):
            TrustedProxies(bad)


# -- forwarding headers ----------------------------------------------------------------------

PROXY = TrustedProxies("127.0.0.1, 10.0.0.0/8")


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        # Forwarded: the nearest hop is last; trusted hops are skipped.
        (
            [("Forwarded", "for=203.0.113.7;proto=https;host=shop.example, for=10.0.0.5")],
            Forwarded("203.0.113.7", None, "https", "shop.example"),
        ),
        (
            [("Forwarded", 'for="[2001:db8::17]:4711";proto=http')],
            Forwarded("2001:db8::17", 4711, "http", None),
        ),
        (
            [("Forwarded", 'for="198.51.100.2:8080"'), ("Forwarded", "for=10.1.2.3")],
            Forwarded("198.51.100.2", 8080, None, None),
        ),
        # The client's own (spoofed) hop is left of the first untrusted one: ignored.
        (
            [("Forwarded", "for=1.1.1.1;proto=https, for=203.0.113.9, for=10.0.0.5")],
            Forwarded("203.0.113.9", None, None, None),
        ),
        # Forwarded wins over X-Forwarded-For.
        (
            [("X-Forwarded-For", "6.6.6.6"), ("Forwarded", "for=203.0.113.1")],
            Forwarded("203.0.113.1", None, None, None),
        ),
        # X-Forwarded-For: the right-most address that is not a trusted proxy.
        (
            [("X-Forwarded-For", "6.6.6.6, 203.0.113.5, 10.0.0.2")],
            Forwarded("203.0.113.5", None, None, None),
        ),
        (
            [
                ("X-Forwarded-For", "203.0.113.5, 10.0.0.2"),
                ("X-Forwarded-Proto", "https, http"),
                ("X-Forwarded-Host", "shop.example:8443, inner"),
            ],
            Forwarded("203.0.113.5", None, "https", "shop.example:8443"),
        ),
        (
            [("X-Forwarded-For", "203.0.113.5"), ("X-Forwarded-Proto", "HTTPS")],
            Forwarded("203.0.113.5", None, "https", None),
        ),
        # Every hop trusted: the left-most is the client.
        ([("X-Forwarded-For", "10.0.0.9, 10.0.0.8")], Forwarded("10.0.0.9", None, None, None)),
        # Malformed: ignored, never an error.
        ([("X-Forwarded-For", "not-an-address")], None),
        (
            [("X-Forwarded-For", "203.0.113.5"), ("X-Forwarded-Proto", "gopher")],
            Forwarded("203.0.113.5", None, None, None),
        ),
        (
            [("X-Forwarded-For", "203.0.113.5"), ("X-Forwarded-Host", "evil host/x")],
            Forwarded("203.0.113.5", None, None, None),
        ),
        ([("Forwarded", 'for="[2001:db8::17')], None),
        ([("Forwarded", "for=1.2.3.4;for=5.6.7.8")], None),
        ([("Forwarded", "for=unknown;proto=https")], Forwarded(None, None, "https", None)),
        ([("Forwarded", "garbage")], None),
        ([], None),
    ],
)
def test_forwarding_headers_from_a_trusted_peer(
    fields: list[tuple[str, str]], expected: Forwarded | None
) -> None:
    assert resolve("127.0.0.1", headers(*fields), PROXY) == expected


def test_forwarding_headers_from_anyone_else_change_nothing() -> None:
    fields = headers(("Forwarded", "for=1.2.3.4;proto=https"), ("X-Forwarded-For", "1.2.3.4"))
    assert resolve("203.0.113.50", fields, PROXY) is None
    assert resolve("127.0.0.1", fields, TrustedProxies("")) is None


# -- the PROXY protocol ------------------------------------------------------------------------


def v2(command: int, family: int, body: bytes) -> bytes:
    return (
        b"\r\n\r\n\x00\r\nQUIT\n"
        + bytes((0x20 | command, family))
        + struct.pack("!H", len(body))
        + body
    )


V2_IPV4 = v2(
    1, 0x11, ipaddress.IPv4Address("203.0.113.7").packed + bytes(4) + struct.pack("!HH", 5555, 443)
)
V2_IPV6 = v2(
    1, 0x21, ipaddress.IPv6Address("2001:db8::9").packed + bytes(16) + struct.pack("!HH", 6666, 443)
)


@pytest.mark.parametrize(
    ("header", "client", "port"),
    [
        (b"PROXY TCP4 203.0.113.7 10.0.0.1 5555 443\r\n", "203.0.113.7", 5555),
        (b"PROXY TCP6 2001:db8::9 2001:db8::1 6666 443\r\n", "2001:db8::9", 6666),
        (b"PROXY UNKNOWN\r\n", None, None),
        (b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", None, None),
        (V2_IPV4, "203.0.113.7", 5555),
        (V2_IPV6, "2001:db8::9", 6666),
        (v2(0, 0x00, b""), None, None),  # LOCAL: a health check from the proxy itself
        (
            v2(1, 0x11, ipaddress.IPv4Address("1.2.3.4").packed + bytes(4) + bytes(4) + b"TLV!"),
            "1.2.3.4",
            0,
        ),
    ],
)
def test_proxy_headers_whole_and_split(header: bytes, client: str | None, port: int | None) -> None:
    data = header + b"GET / HTTP/1.1\r\n"
    found = read_proxy_header(data)
    assert found is not None
    info, used = found
    assert (info.client, info.port, used) == (client, port, len(header))
    for cut in range(len(header)):
        assert read_proxy_header(header[:cut]) is None, cut


@pytest.mark.parametrize(
    "header",
    [
        b"PROXY TCP4 203.0.113.7 10.0.0.1 5555\r\n",
        b"PROXY TCP4 2001:db8::9 10.0.0.1 5555 443\r\n",
        b"PROXY TCP4 203.0.113.7 10.0.0.1 05555 443\r\n",
        b"PROXY TCP4 203.0.113.7 10.0.0.1 70000 443\r\n",
        b"PROXY UDP4 203.0.113.7 10.0.0.1 5555 443\r\n",
        b"PROXY TCP4 " + b"1" * 120 + b"\r\n",
        b"GET / HTTP/1.1\r\n",
        v2(3, 0x11, bytes(12)),
        v2(1, 0x11, bytes(8)),
        v2(1, 0x31 | 0x0F, bytes(12)),
    ],
)
def test_malformed_proxy_headers(header: bytes) -> None:
    with pytest.raises(ValueError):
        read_proxy_header(header)


# -- over real sockets ----------------------------------------------------------------------


async def who(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "remote": request.remote,
            "scheme": request.scheme,
            "host": request.host,
            "url": str(request.url),
        }
    )


async def asgi_who(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    host = dict(scope["headers"]).get(b"host", b"").decode()
    body = json.dumps({"remote": scope["client"][0], "scheme": scope["scheme"], "host": host})
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body.encode()})


def wsgi_who(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = json.dumps(
        {
            "remote": environ["REMOTE_ADDR"],
            "scheme": environ["wsgi.url_scheme"],
            "host": environ["HTTP_HOST"],
        }
    )
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body.encode()]


def make_runner(kind: str, **config: Any) -> ServerRunner:
    if kind == "web":
        app = web.Application()
        app.router.add_get("/", who)
        return web.AppRunner(app, **config)
    if kind == "asgi":
        return ASGIRunner(asgi_who, lifespan="off", **config)
    return WSGIRunner(wsgi_who, **config)


async def serve(kind: str, **config: Any) -> tuple[ServerRunner, int]:
    runner = make_runner(kind, **config)
    await runner.setup()
    await TCPSite(runner, "127.0.0.1", 0).start()
    return runner, runner.addresses[0][1]


async def ask(port: int, prefix: bytes = b"", extra: bytes = b"") -> Any:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(prefix + b"GET / HTTP/1.1\r\nHost: inner.local\r\n" + extra + b"\r\n")
        response = await read_response(reader)
        return response.json() if response.status == 200 else response.status
    finally:
        writer.close()


@pytest.mark.parametrize("kind", ["web", "asgi", "wsgi"])
def test_every_interface_reports_what_trusted_proxies_say(
    loop: asyncio.AbstractEventLoop, kind: str
) -> None:
    forwarded = (
        b"X-Forwarded-For: 203.0.113.5\r\nX-Forwarded-Proto: https\r\n"
        b"X-Forwarded-Host: shop.example\r\n"
    )

    async def main() -> None:
        runner, port = await serve(
            kind, trusted_proxies=TrustedProxies("127.0.0.1"), proxy_headers=True
        )
        try:
            got = await ask(port, extra=forwarded)
            assert (got["remote"], got["scheme"], got["host"]) == (
                "203.0.113.5",
                "https",
                "shop.example",
            )
            if kind == "web":
                assert got["url"] == "https://shop.example/"
            plain = await ask(port)
            assert (plain["remote"], plain["scheme"], plain["host"]) == (
                "127.0.0.1",
                "http",
                "inner.local",
            )
            # Malformed: ignored, not a 500.
            bad = await ask(port, extra=b'X-Forwarded-For: ???\r\nForwarded: for="[oops\r\n')
            assert bad["remote"] == "127.0.0.1"
        finally:
            await runner.cleanup()
        # The same headers from a peer nobody trusts change nothing.
        runner, port = await serve(
            kind, trusted_proxies=TrustedProxies("10.9.9.9"), proxy_headers=True
        )
        try:
            got = await ask(port, extra=forwarded)
            assert (got["remote"], got["scheme"], got["host"]) == (
                "127.0.0.1",
                "http",
                "inner.local",
            )
        finally:
            await runner.cleanup()
        # Trusted, but proxy_headers off: ignored as well.
        runner, port = await serve(kind, trusted_proxies=TrustedProxies("127.0.0.1"))
        try:
            assert (await ask(port, extra=forwarded))["remote"] == "127.0.0.1"
        finally:
            await runner.cleanup()

    run(loop, main())


@pytest.mark.parametrize("kind", ["web", "asgi", "wsgi"])
def test_the_proxy_protocol_from_a_trusted_peer(loop: asyncio.AbstractEventLoop, kind: str) -> None:
    async def main() -> None:
        runner, port = await serve(
            kind, trusted_proxies=TrustedProxies("127.0.0.1"), proxy_protocol=True
        )
        try:
            v1 = await ask(port, prefix=b"PROXY TCP4 203.0.113.7 10.0.0.1 5555 80\r\n")
            assert v1["remote"] == "203.0.113.7"
            assert (await ask(port, prefix=V2_IPV6))["remote"] == "2001:db8::9"
            assert (await ask(port, prefix=v2(0, 0, b"")))["remote"] == "127.0.0.1"  # LOCAL
            # Malformed: the connection is closed, and the server serves on.
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"PROXY TCP4 nonsense\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert await asyncio.wait_for(reader.read(), 10) == b""
            writer.close()
            assert (await ask(port, prefix=b"PROXY UNKNOWN\r\n"))["remote"] == "127.0.0.1"
        finally:
            await runner.cleanup()
        # A peer that is not trusted speaks plain HTTP: its PROXY line is a bad request.
        runner, port = await serve(
            kind, trusted_proxies=TrustedProxies("10.9.9.9"), proxy_protocol=True
        )
        try:
            assert await ask(port, prefix=b"PROXY TCP4 203.0.113.7 10.0.0.1 5555 80\r\n") == 400
            assert (await ask(port))["remote"] == "127.0.0.1"
        finally:
            await runner.cleanup()

    run(loop, main())


# -- load shedding -------------------------------------------------------------------------------


def test_limit_concurrency_sheds_with_503(loop: asyncio.AbstractEventLoop) -> None:
    release = asyncio.Event()
    calls: list[str] = []

    async def slow(request: web.Request) -> web.Response:
        calls.append(request.path)
        if request.path == "/slow":
            await release.wait()
        return web.Response(text="done")

    async def ws(request: web.Request) -> web.WebSocketResponse:
        sock = web.WebSocketResponse()
        await sock.prepare(request)
        async for _ in sock:
            pass
        return sock

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/slow", slow)
        app.router.add_get("/fast", slow)
        app.router.add_get("/ws", ws)
        runner = web.AppRunner(app, limit_concurrency=2)
        await runner.setup()
        await TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        http = runner.server
        assert http is not None
        try:
            # Idle keep-alive connections do not count.
            idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(5)]
            first = asyncio.ensure_future(ask_path(port, "/slow"))
            while http.in_flight < 1:
                await asyncio.sleep(0.01)
            # A WebSocket counts while it is open.
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: MDEyMzQ1Njc4OWFiY2RlZg==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101 ")
            assert http.in_flight == 2
            shed = await ask_path(port, "/fast")
            assert shed.status == 503 and shed.headers["Retry-After"] == "1"
            assert calls == ["/slow"]  # the shed request never reached the app
            assert http.shed_requests == 1
            writer.close()
            release.set()
            assert (await first).status == 200
            while http.in_flight:
                await asyncio.sleep(0.01)
            assert (await ask_path(port, "/fast")).status == 200
            for _, w in idle:
                w.close()
        finally:
            await runner.cleanup()

    run(loop, main())


async def ask_path(port: int, path: str) -> Any:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        return await read_response(reader)
    finally:
        writer.close()


def test_max_connections_closes_the_excess(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        runner, port = await serve("web", max_connections=2)
        http = runner.server
        assert http is not None
        try:
            kept = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
            while http.connections < 2:
                await asyncio.sleep(0.01)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert await asyncio.wait_for(reader.read(), 10) == b""  # closed at once
            writer.close()
            assert http.refused_connections == 1
            r0, w0 = kept[0]
            w0.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await read_response(r0)).status == 200
            for _, w in kept:
                w.close()
            while http.connections:
                await asyncio.sleep(0.01)
            assert (await ask(port))["remote"] == "127.0.0.1"
        finally:
            await runner.cleanup()

    run(loop, main())
