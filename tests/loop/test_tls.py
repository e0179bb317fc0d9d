"""TLS over `ssl.MemoryBIO` (treadle/loop/tls.py), on both loops.

Every connection here is a `TLSProtocol` used as the *plain* protocol of
`loop.create_connection` / `loop.create_server`, so the same test exercises
Treadle's TLS layer over the stdlib's socket transports and over Treadle's. The
certificates (a CA, a server certificate for localhost and 127.0.0.1, a client
certificate) are made once per session with the `openssl` command.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import os
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.conftest import run
from tests.loop.test_streams import Recorder
from treadle.loop.tls import (
    SSLTransport,
    TLSProtocol,
    check_ssl_args,
    check_start_tls_args,
    make_context,
    start_tls,
)

# -- certificates ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Certs:
    ca: str
    cert: str  # the server's: localhost and 127.0.0.1
    key: str
    client_cert: str
    client_key: str


_LEAF_EXTENSIONS = """\
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage={usage}
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
"""


def make_certs(directory: Path) -> Certs:
    """A CA and two certificates it signed, valid for 100 years, by `openssl`.

    The leaves carry the extensions Python 3.13's strict verification wants.
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("the `openssl` command is needed to make the test certificates")

    def call(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, cwd=directory)

    newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    call("req", "-x509", "-new", *newkey, "-keyout", "ca.key", "-out", "ca.pem",
         "-days", "36500", "-subj", "/CN=Treadle Test CA",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    leaves = {
        "server": ("localhost", "serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1"),
        "client": ("treadle-client", "clientAuth"),
    }
    for serial, (name, (cn, usage)) in enumerate(leaves.items(), start=1):
        (directory / f"{name}.ext").write_text(_LEAF_EXTENSIONS.format(usage=usage))
        call("req", "-new", *newkey, "-keyout", f"{name}.key", "-out", f"{name}.csr",
             "-subj", f"/CN={cn}")  # fmt: skip
        call("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-set_serial", str(serial), "-days", "36500", "-extfile", f"{name}.ext",
             "-out", f"{name}.pem")  # fmt: skip
    return Certs(
        ca=str(directory / "ca.pem"),
        cert=str(directory / "server.pem"),
        key=str(directory / "server.key"),
        client_cert=str(directory / "client.pem"),
        client_key=str(directory / "client.key"),
    )


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


def server_context(certs: Certs) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs.cert, certs.key)
    return context


def client_context(certs: Certs) -> ssl.SSLContext:
    """Verifies the server against the test CA, hostname included."""
    return ssl.create_default_context(cafile=certs.ca)


# -- protocols and connections -----------------------------------------------------------


class App(Recorder):
    """test_streams' Recorder, which can also wait for an amount of data."""

    async def received(self, size: int) -> bytes:
        while len(self.data) < size:
            self.got_data.clear()
            await self.got_data.wait()
        return bytes(self.data)


class TLS(TLSProtocol):
    """A TLSProtocol that keeps its plain transport and its handshake waiter
    where a test can reach them."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        app: Any,
        context: ssl.SSLContext,
        waiter: asyncio.Future[None],
        **kwargs: Any,
    ) -> None:
        super().__init__(loop, app, context, waiter, **kwargs)
        self.app = app
        self.handshake = waiter
        self.plain: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.plain = transport
        super().connection_made(transport)


def _retrieve(future: asyncio.Future[Any]) -> None:
    # A server's failed handshake is the test's business, not the loop's
    # "exception was never retrieved" report.
    if not future.cancelled():
        future.exception()


async def tls_server(
    app_factory: Callable[[], asyncio.BaseProtocol], context: ssl.SSLContext, **kwargs: Any
) -> tuple[asyncio.AbstractServer, int, list[TLS]]:
    """A TLS server on 127.0.0.1; its TLS protocols, one per connection, in a list."""
    loop = asyncio.get_running_loop()
    made: list[TLS] = []

    def factory() -> TLS:
        waiter = loop.create_future()
        waiter.add_done_callback(_retrieve)
        tls = TLS(loop, app_factory(), context, waiter, server_side=True, **kwargs)
        made.append(tls)
        return tls

    server = await loop.create_server(factory, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], made


async def tls_connect(
    app: asyncio.BaseProtocol,
    port: int,
    context: ssl.SSLContext,
    *,
    server_hostname: str | None = "localhost",
    **kwargs: Any,
) -> tuple[SSLTransport, TLS]:
    """Connect, complete the handshake, return the TLS transport: what
    `create_connection(ssl=...)` does."""
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()
    tls = TLS(loop, app, context, waiter, server_hostname=server_hostname, **kwargs)
    plain, _ = await loop.create_connection(lambda: tls, "127.0.0.1", port)
    try:
        await waiter
    except BaseException:
        plain.close()
        raise
    return tls.app_transport, tls


@dataclasses.dataclass
class Pair:
    """Both ends of a TLS connection over loopback."""

    app: App  # the client's application protocol
    transport: SSLTransport  # ... its TLS transport
    tls: TLS  # ... and the TLS protocol under it
    server: list[TLS]  # the server's TLS protocols, one per connection

    @property
    def server_app(self) -> Any:
        return self.server[0].app


@contextlib.asynccontextmanager
async def connected(
    certs: Certs,
    server_app: Callable[[], asyncio.BaseProtocol] = App,
    app: App | None = None,
    **kwargs: Any,
) -> AsyncIterator[Pair]:
    """A TLS server and a client connected to it; closed and waited for after."""
    server, port, made = await tls_server(server_app, server_context(certs))
    try:
        app = App() if app is None else app
        transport, tls = await tls_connect(app, port, client_context(certs), **kwargs)
        yield Pair(app, transport, tls, made)
        transport.close()
        await app.lost
    finally:
        await close_server(server)


class CountingStreamProtocol(asyncio.StreamReaderProtocol):
    """Streams, counting how often the transport paused the writer."""

    pauses = 0

    def pause_writing(self) -> None:
        self.pauses += 1
        super().pause_writing()


async def open_streams(
    port: int, context: ssl.SSLContext, **kwargs: Any
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, CountingStreamProtocol]:
    """`asyncio.open_connection(ssl=...)`, with Treadle's TLS layer."""
    reader = asyncio.StreamReader()
    protocol = CountingStreamProtocol(reader)
    transport, _ = await tls_connect(protocol, port, context, **kwargs)
    writer = asyncio.StreamWriter(transport, protocol, reader, asyncio.get_running_loop())
    return reader, writer, protocol


def stream_handler(
    handle: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any],
) -> Callable[[], asyncio.StreamReaderProtocol]:
    """`asyncio.start_server`'s protocol factory."""
    return lambda: asyncio.StreamReaderProtocol(asyncio.StreamReader(), handle)


P = TypeVar("P", bound=asyncio.BaseProtocol)


async def plain_server(
    factory: Callable[[], P] = App,  # type: ignore[assignment]
) -> tuple[asyncio.AbstractServer, int, list[P]]:
    """A server without TLS (silent, unless `factory` says otherwise); its
    protocols, one per connection, in a list."""
    made: list[P] = []

    def record() -> P:
        made.append(factory())
        return made[-1]

    server = await asyncio.get_running_loop().create_server(record, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], made


async def close_server(server: asyncio.AbstractServer) -> None:
    server.close()
    await server.wait_closed()


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# -- data both ways, flow control ----------------------------------------------------------


def test_stream_echo_of_megabytes_with_flow_control(
    loop: asyncio.AbstractEventLoop, certs: Certs
) -> None:
    payload = bytes(range(256)) * (16 * 1024)  # 4 MiB
    chunk = 64 * 1024

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(chunk):
            writer.write(data)
            await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def main() -> tuple[bytes, int]:
        server, port, _ = await tls_server(stream_handler(echo), server_context(certs))
        reader, writer, protocol = await open_streams(port, client_context(certs))
        # A small kernel buffer and TLS-layer limits: the writer must wait.
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, chunk)
        writer.transport.set_write_buffer_limits(high=4 * chunk)

        async def send() -> None:
            for i in range(0, len(payload), chunk):
                writer.write(payload[i : i + chunk])
                await writer.drain()

        _, echoed = await asyncio.gather(send(), reader.readexactly(len(payload)))
        writer.close()
        await writer.wait_closed()
        await close_server(server)
        return echoed, protocol.pauses

    echoed, pauses = run(loop, main())
    assert echoed == payload
    assert pauses > 0


def test_concurrent_connections_keep_their_data_apart(
    loop: asyncio.AbstractEventLoop, certs: Certs
) -> None:
    """Connections of one loop share its scratch buffer for decrypted data."""

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(100_000):
            writer.write(data)
        writer.close()

    async def client(port: int, i: int) -> bool:
        reader, writer, _ = await open_streams(port, client_context(certs))
        payload = bytes([i]) * 300_000
        writer.write(payload)
        echoed = await reader.readexactly(len(payload))
        writer.close()
        await writer.wait_closed()
        return echoed == payload

    async def main() -> list[bool]:
        server, port, _ = await tls_server(stream_handler(echo), server_context(certs))
        results = await asyncio.gather(*(client(port, i) for i in range(20)))
        await close_server(server)
        return results

    assert run(loop, main()) == [True] * 20


def test_peer_backpressure_pauses_the_application(
    loop: asyncio.AbstractEventLoop, certs: Certs
) -> None:
    class Paused(App):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            transport.pause_reading()  # type: ignore[attr-defined]

    async def main() -> None:
        async with connected(certs, Paused) as c:
            c.transport.get_extra_info("socket").setsockopt(
                socket.SOL_SOCKET, socket.SO_SNDBUF, 65536
            )
            c.transport.set_write_buffer_limits(high=128 * 1024)
            assert c.transport.get_write_buffer_limits() == (32 * 1024, 128 * 1024)
            sent = 0
            # The peer reads nothing: the kernel buffers fill, the plain transport
            # pushes back, the TLS layer fills up to its high-water mark.
            while "pause_writing" not in c.app.events:
                c.transport.write(b"x" * 65536)
                sent += 65536
                assert sent < 64 * 1024 * 1024, "the application was never paused"
            assert c.transport.get_write_buffer_size() > 128 * 1024
            await c.server_app.made
            c.server_app.transport.resume_reading()
            await c.server_app.received(sent)
            assert c.app.events[-1] == "resume_writing"
            assert c.transport.get_write_buffer_size() <= 32 * 1024

    run(loop, main())


def test_pause_reading_pauses_the_plain_transport(
    loop: asyncio.AbstractEventLoop, certs: Certs
) -> None:
    async def main() -> None:
        async with connected(certs) as c:
            assert c.transport.is_reading()
            c.transport.pause_reading()
            assert not c.transport.is_reading()
            assert not c.tls.plain.is_reading()  # at once, not after 256 KiB
            await c.server_app.made
            server_transport = c.server_app.transport
            server_transport.get_extra_info("socket").setsockopt(
                socket.SOL_SOCKET, socket.SO_SNDBUF, 65536
            )
            sent = 0
            while "pause_writing" not in c.server_app.events:
                server_transport.write(b"y" * 65536)
                sent += 65536
                await asyncio.sleep(0)
                assert sent < 64 * 1024 * 1024, "the sender was never paused"
            assert not c.app.data  # nothing delivered while paused
            c.transport.resume_reading()
            assert c.transport.is_reading()
            assert await c.app.received(sent) == b"y" * sent

    run(loop, main())


def test_buffered_protocol_application(loop: asyncio.AbstractEventLoop, certs: Certs) -> None:
    payload = os.urandom(1024 * 1024)

    class Buffered(asyncio.BufferedProtocol):
        def __init__(self, then: App) -> None:
            self.buffer = bytearray(1000)
            self.data = bytearray()
            self.sizes: set[int] = set()
            self.then = then

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport: Any = transport

        def get_buffer(self, sizehint: int) -> bytearray:
            return self.buffer

        def buffer_updated(self, nbytes: int) -> None:
            self.sizes.add(nbytes)
            self.data += self.buffer[:nbytes]
            if len(self.data) >= 100_000:
                # Hand the rest of the stream to a Protocol, mid-read.
                self.transport.set_protocol(self.then)
                assert self.transport.get_protocol() is self.then

    async def main() -> bytes:
        async with connected(certs) as c:
            then = App()
            buffered = Buffered(then)
            buffered.connection_made(c.transport)
            c.transport.set_protocol(buffered)
            await c.server_app.made
            c.server_app.transport.write(payload)
            while len(buffered.data) + len(then.data) < len(payload):
                await asyncio.sleep(0.01)
            assert max(buffered.sizes) <= 1000
            c.transport.set_protocol(c.app)
        return bytes(buffered.data) + bytes(then.data)

    assert run(loop, main()) == payload


# -- handshake ---------------------------------------------------------------------------


def test_callbacks_in_order_and_close_notify_from_the_peer(
    loop: asyncio.AbstractEventLoop, certs: Certs
) -> None:
    class Greeter(App):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            self.transport.write(b"hello")
            self.transport.close()

    async def main() -> tuple[list[Any], list[Any]]:
        async with connected(certs, Greeter) as c:
            assert await c.app.lost is None
            assert await c.server_app.lost is None
            assert c.app.data == b"hello"
        return c.app.events, c.server_app.events

    client_events, server_events = run(loop, main())
    # The server closed after writing: close_notify reached the client as EOF;
    # the client answered with its own, which ended the server's shutdown.
    assert client_events == ["made", "data", "eof", ("lost", None)]
    assert server_events == ["made", ("lost", None)]


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_protocol_versions(
    loop: asyncio.AbstractEventLoop, certs: Certs, version: ssl.TLSVersion
) -> None:
    async def main() -> tuple[str, bytes]:
        server, port, made = await tls_server(App, server_context(certs))
        context = client_context(certs)
        context.minimum_version = context.maximum_version = version
        app = App()
        transport, _ = await tls_connect(app, port, context)
        transport.write(b"ping")
        await made[0].handshake
        await made[0].app.received(4)
        made[0].app.transport.write(b"pong")
        data = await app.received(4)
        transport.close()
        await app.lost
        await close_server(server)
        return transport.get_extra_info("cipher")[1], data

    assert run(loop, main()) == (version.name.replace("v1_", "v1."), b"pong")


def test_extra_info(loop: asyncio.AbstractEventLoop, certs: Certs) -> None:
    async def main() -> None:
        async with connected(certs) as c:
            transport = c.transport
            assert isinstance(transport, asyncio.Transport)
            assert "ssl" in type(transport).__name__.lower()  # how CPython's tests tell
            context = transport.get_extra_info("sslcontext")
            assert isinstance(context, ssl.SSLContext)
            sslobj = transport.get_extra_info("ssl_object")
            assert isinstance(sslobj, ssl.SSLObject)
            assert sslobj.context is context
            assert sslobj.server_hostname == "localhost"
            peercert = transport.get_extra_info("peercert")
            assert dict(x[0] for x in peercert["subject"])["commonName"] == "localhost"
            assert transport.get_extra_info("cipher") == sslobj.cipher()
            assert transport.get_extra_info("compression") is None
            # The plain transport's, passed through.
            peername = transport.get_extra_info("peername")
            assert peername == c.tls.plain.get_extra_info("peername")
            assert peername[0] == "127.0.0.1"
            sock = transport.get_extra_info("socket")
            assert sock.getsockname() == transport.get_extra_info("sockname")
            assert transport.get_extra_info("nonsense", 42) == 42
        # The TLS details outlive the connection; the plain transport's do not.
        assert transport.get_extra_info("peername") is None
        assert transport.get_extra_info("sslcontext") is context

    run(loop, main())


def test_sni_and_server_hostname(loop: asyncio.AbstractEventLoop, certs: Certs) -> None:
    async def main() -> list[str | None]:
        seen: list[str | None] = []
        context = server_context(certs)
        context.sni_callback = lambda sslobj, name, ctx: seen.append(name)  # type: ignore[assignment, misc, func-returns-value]
        server, port, _ = await tls_server(App, context)
        for hostname in ("localhost", "127.0.0.1", ""):
            client = client_context(certs)
            if not hostname:
                client.check_hostname = False  # nothing to check it against
            app = App()
            transport, _ = await tls_connect(app, port, client, server_hostname=hostname)
            transport.close()
            await app.lost
        await close_server(server)
        return seen

    # No SNI for an IP address (RFC 6066) or for ''; the IP is still verified
    # against the certificate's IP address.
    assert run(loop, main()) == ["localhost", None, None]


def test_untrusted_certificate_fails_the_handshake(
    loop: asyncio.AbstractEventLoop, certs: Certs
) -> None:
    async def main() -> None:
        server, port, made = await tls_server(App, server_context(certs))
        app = App()
        untrusting = ssl.create_default_context()  # the system CAs only
        with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
            await tls_connect(app, port, untrusting)
        # The client told the server why with an alert.
        with pytest.raises(ssl.SSLError, match=r"(?i)alert unknown ca"):
            await made[0].handshake
        assert app.events == []  # never connected, so never lost either
        assert not made[0].app.events
        await close_server(server)

    run(loop, main())


def test_hostname_mismatch(loop: asyncio.AbstractEventLoop, certs: Certs) -> None:
    async def main() -> None:
        server, port, _ = await tls_server(App, server_context(certs))
        for hostname, message in [
            ("example.com", "Hostname mismatch"),
            ("127.0.0.2", "IP address mismatch"),
        ]:
            with pytest.raises(ssl.SSLCertVerificationError, match=message):
                await tls_connect(App(), port, client_context(certs), server_hostname=hostname)
        await close_server(server)

    run(loop, main())


def test_client_certificate(loop: asyncio.AbstractEventLoop, certs: Certs) -> None:
    async def main() -> None:
        context = server_context(certs)
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(certs.ca)
        server, port, made = await tls_server(App, context)
        with pytest.raises(ssl.SSLError):
            # No certificate: the server refuses (the client may learn of it
            # only once it reads, as a TLS 1.3 client finishes first).
            app = App()
            transport, _ = await tls_connect(app, port, client_context(certs))
            exc = await app.lost
            assert exc is not None
            raise exc
        with pytest.raises(ssl.SSLError):
            await made[0].handshake
        client = client_context(certs)
        client.load_cert_chain(certs.client_cert, certs.client_key)
        app = App()
        transport, _ = await tls_connect(app, port, client)
        await made[1].handshake
        peercert = made[1].app_transport.get_extra_info("peercert")
        assert dict(x[0] for x in peercert["subject"])["commonName"] == "treadle-client"
        transport.close()
        await app.lost
        await close_server(server)

    run(loop, main())


def test_post_handshake_authentication(loop: asyncio.AbstractEventLoop, certs: Certs) -> None:
    """TLS 1.3 post-handshake auth: the client's SSL object must answer a
    certificate request that arrives with application data, after the handshake."""

    class Asker(App):
        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            sslobj = self.transport.get_extra_info("ssl_object")
            if data == b"who are you?":
                assert sslobj.getpeercert() is None
                sslobj.verify_client_post_handshake()
                self.transport.write(b"show me")
            elif data == b"here":
                cert = sslobj.getpeercert()
                self.transport.write(dict(x[0] for x in cert["subject"])["commonName"].encode())

    async def main() -> bytes:
        context = server_context(certs)
        context.verify_mode = ssl.CERT_REQUIRED
        context.post_handshake_auth = True
        context.load_verify_locations(certs.ca)
        server, port, _ = await tls_server(Asker, context)
        client = client_context(certs)
        client.post_handshake_auth = True
        client.load_cert_chain(certs.client_cert, certs.client_key)
        app = App()
        transport, _ = await tls_connect(app, port, client)
        transport.write(b"who are you?")
        await app.received(len(b"show me"))
        transport.write(b"here")
        answer = await app.received(len(b"show me") + len(b"treadle-client"))
        transport.close()
        await app.lost
        await close_server(server)
        return answer

    assert run(loop, main()) == b"show metreadle-client"


def test_handshake_timeout_against_a_silent_server(
    loop: asyncio.AbstractEventLoop, certs: Certs
) -> None:
    async def main() -> None:
        server, port, silent = await plain_server()
        app = App()
        with pytest.raises(
            ConnectionAbortedError, match=r"SSL handshake is taking longer than 0\.2 seconds"
        ):
            await tls_connect(app, port, client_context(certs), ssl_handshake_timeout=0.2)
        await silent[0].lost  # the connection was dropped
        assert app.events == []
        await close_server(server)

    run(loop, main())


def test_peer_closing_during_the_handshake(loop: asyncio.AbstractEventLoop, certs: Certs) -> None:
    class Closer(App):
        def data_received(self, data: bytes) -> None:
            self.transport.close()  # a ClientHello: no thanks

    async def main() -> None:
        server, port, _ = await plain_server(Closer)
        app = App()
        with pytest.raises(ConnectionResetError):
            await tls_connect(app, port, client_context(certs))
        await asyncio.sleep(0)
        assert app.events == []
        await close_server(server)

    run(loop, main())


def test_close_during_the_handshake_aborts(loop: asyncio.AbstractEventLoop, certs: Certs) -> None:
    async def main() -> None:
        server, port, silent = await plain_server()
        waiter = loop.create_future()
        tls = TLS(loop, App(), client_context(certs), waiter, server_hostname="localhost")
        await loop.create_connection(lambda: tls, "127.0.0.1", port)
        tls.app_transport.close()
        assert tls.app_transport.is_closing()
        with pytest.raises(ConnectionAbortedError, match="closed during the handshake"):
            await waiter
        await silent[0].lost
        await close_server(server)

    run(loop, main())


# -- closing ---------------------------------------------------------------------------------


def test_close_flushes_then_sends_close_notify(
    loop: asyncio.AbstractEventLoop, certs: Certs
) -> None:
    payload = os.urandom(1024 * 1024)

    async def main() -> None:
        async with connected(certs) as c:
            c.transport.write(payload)
            c.transport.close()
            assert c.transport.is_closing()
            assert not c.transport.is_reading()
            assert await c.app.lost is None
            assert await c.server_app.lost is None
            assert c.server_app.data == payload
            # The server heard close_notify as EOF; the client, having closed,
            # hears nothing more but the end.
            assert c.server_app.events == ["made", "data", "eof", ("lost", None)]
            assert c.app.events == ["made", ("lost", None)]

    run(loop, main())


def test_eof_received_returning_true_is_ignored_with_a_warning(
    loop: asyncio.AbstractEventLoop, certs: Certs, caplog: pytest.LogCaptureFixture
) -> None:
    class Closer(App):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            transport.close()

    async def main() -> list[Any]:
        with caplog.at_level(logging.WARNING, logger="asyncio"):
            async with connected(certs, Closer, App(keep_open_on_eof=True)) as c:
                assert await c.app.lost is None  # closed all the same: no half-close
        return c.app.events

    assert run(loop, main()) == ["made", "eof", ("lost", None)]
    assert "returning true from eof_received() has no effect when using ssl" in caplog.text


@pytest.mark.parametrize("paused", [False, True], ids=["reading", "paused"])
def test_tcp_eof_without_close_notify(
    loop: asyncio.AbstractEventLoop, certs: Certs, paused: bool
) -> None:
    """The peer ends the TCP stream without close_notify: what came before is
    delivered, then eof_received(), then connection_lost(None), as asyncio does;
    an application that paused reading gets it all when it resumes."""

    async def main() -> list[Any]:
        async with connected(certs) as c:
            if paused:
                c.transport.pause_reading()
            await c.server_app.made
            c.server_app.transport.write(b"last words")
            c.server_app.transport.get_extra_info("socket").shutdown(socket.SHUT_WR)
            if paused:
                await asyncio.sleep(0.05)
                assert c.app.events == ["made"]
                c.transport.resume_reading()
            assert await c.app.lost is None
            assert c.app.data == b"last words"
            await c.server_app.lost
        return c.app.events

    assert run(loop, main()) == ["made", "data", "eof", ("lost", None)]


def test_shutdown_timeout(loop: asyncio.AbstractEventLoop, certs: Certs) -> None:
    class Deaf(App):
        # Reads nothing, so never answers close_notify.
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            transport.pause_reading()  # type: ignore[attr-defined]

    async def main() -> None:
        async with connected(certs, Deaf, ssl_shutdown_timeout=0.2) as c:
            c.transport.close()
            exc = await c.app.lost
            assert isinstance(exc, TimeoutError)
            assert str(exc) == "SSL shutdown timed out"
            c.server[0].app_transport.abort()

    run(loop, main())


def test_abort(loop: asyncio.AbstractEventLoop, certs: Certs) -> None:
    async def main() -> None:
        async with connected(certs) as c:
            c.transport.write(b"lost in the abort, or not")
            c.transport.abort()
            assert c.transport.is_closing()
            assert await c.app.lost is None
            assert c.app.events == ["made", ("lost", None)]
            # No close_notify: the server sees a bare end of the stream.
            exc = await c.server_app.lost
            assert exc is None or isinstance(exc, ConnectionResetError)
            c.transport.abort()  # harmless

    run(loop, main())


def test_writes_after_close_are_dropped(
    loop: asyncio.AbstractEventLoop, certs: Certs, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        async with connected(certs) as c:
            c.transport.close()
            c.transport.write(b"after close")  # dropped, silently at first
            await c.app.lost
            with caplog.at_level(logging.WARNING, logger="asyncio"):
                for _ in range(5):
                    c.transport.write(b"after the end")

    run(loop, main())
    assert "SSL connection is closed" in caplog.text


def test_write_api(loop: asyncio.AbstractEventLoop, certs: Certs) -> None:
    async def main() -> None:
        async with connected(certs) as c:
            with pytest.raises(TypeError, match="data: expecting a bytes-like instance, got str"):
                c.transport.write("text")  # type: ignore[arg-type]
            c.transport.write(b"")
            buffer = bytearray(b"one,")
            c.transport.write(buffer)
            buffer[:] = b"XXXX"  # the transport does not keep the caller's buffer
            c.transport.writelines([b"two,", bytearray(b"three,"), memoryview(b"four")])
            assert not c.transport.can_write_eof()
            with pytest.raises(NotImplementedError):
                c.transport.write_eof()
            assert await c.server_app.received(18) == b"one,two,three,four"

    run(loop, main())


def test_write_before_the_handshake_is_sent_after_it(
    loop: asyncio.AbstractEventLoop, certs: Certs
) -> None:
    async def main() -> None:
        server, port, made = await tls_server(App, server_context(certs))
        waiter = loop.create_future()
        app = App()
        tls = TLS(loop, app, client_context(certs), waiter, server_hostname="localhost")
        tls.app_transport.write(b"early")
        assert tls.app_transport.get_write_buffer_size() == 5
        await loop.create_connection(lambda: tls, "127.0.0.1", port)
        await waiter
        server_app = made[0].app
        assert await server_app.received(5) == b"early"
        tls.app_transport.close()
        await app.lost
        await close_server(server)

    run(loop, main())


def test_flow_control_limits_api(loop: asyncio.AbstractEventLoop, certs: Certs) -> None:
    async def main() -> None:
        async with connected(certs) as c:
            transport = c.transport
            assert transport.get_write_buffer_limits() == (128 * 1024, 512 * 1024)
            assert transport.get_read_buffer_limits() == (64 * 1024, 256 * 1024)
            transport.set_write_buffer_limits(low=1000)
            assert transport.get_write_buffer_limits() == (1000, 4000)
            transport.set_read_buffer_limits(high=8000)
            assert transport.get_read_buffer_limits() == (2000, 8000)
            assert transport.get_read_buffer_size() == 0
            with pytest.raises(ValueError, match=r"high \(1\) must be >= low \(2\) must be >= 0"):
                transport.set_write_buffer_limits(high=1, low=2)
            with pytest.raises(ValueError, match="must be >= 0"):
                transport.set_read_buffer_limits(high=-1)

    run(loop, main())


# -- start_tls ---------------------------------------------------------------------------


class Upgrader(asyncio.Protocol):
    """Speaks plain text until 'STARTTLS', then TLS with the same protocol object."""

    def __init__(self, context: ssl.SSLContext, server_side: bool) -> None:
        self.loop = asyncio.get_running_loop()
        self.context = context
        self.server_side = server_side
        self.made = 0
        self.transport: Any = None
        self.tls_transport: asyncio.Future[Any] = self.loop.create_future()
        self.task: asyncio.Task[None] | None = None  # start_tls, kept alive
        self.plain_data = bytearray()
        self.tls_data = bytearray()
        self.got = asyncio.Event()
        self.lost = self.loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.made += 1
        self.transport = transport
        if not self.server_side:
            transport.write(b"STARTTLS\n")  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if self.task is not None:  # from now on, data comes through TLS
            self.tls_data += data
            self.got.set()
            return
        self.plain_data += data
        if self.plain_data.endswith(b"STARTTLS\n"):
            self.transport.write(b"GO\n")
            self.upgrade()
        elif self.plain_data.endswith(b"GO\n"):
            self.upgrade()

    def upgrade(self) -> None:
        async def upgrade() -> None:
            self.tls_transport.set_result(
                await start_tls(
                    self.loop,
                    self.transport,
                    self,
                    self.context,
                    server_side=self.server_side,
                    server_hostname=None if self.server_side else "localhost",
                )
            )

        self.task = self.loop.create_task(upgrade())

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set_result(exc)


def test_start_tls_upgrades_both_sides(loop: asyncio.AbstractEventLoop, certs: Certs) -> None:
    async def main() -> None:
        server, port, servers = await plain_server(
            lambda: Upgrader(server_context(certs), server_side=True)
        )
        _, client = await loop.create_connection(
            lambda: Upgrader(client_context(certs), server_side=False), "127.0.0.1", port
        )
        client_tls = await client.tls_transport
        server_tls = await servers[0].tls_transport
        assert isinstance(client_tls, SSLTransport)
        assert client_tls.get_protocol() is client
        assert client_tls.get_extra_info("peercert")["subject"]
        client_tls.write(b"secret")
        await servers[0].got.wait()
        server_tls.write(b"reply")
        await client.got.wait()
        assert (servers[0].tls_data, client.tls_data) == (b"secret", b"reply")
        assert (servers[0].made, client.made) == (1, 1)  # no second connection_made
        client_tls.close()
        assert await client.lost is None
        assert await servers[0].lost is None
        await close_server(server)

    run(loop, main())


def test_start_tls_inside_tls(loop: asyncio.AbstractEventLoop, certs: Certs) -> None:
    async def main() -> None:
        server, port, made = await tls_server(
            lambda: Upgrader(server_context(certs), server_side=True), server_context(certs)
        )
        client = Upgrader(client_context(certs), server_side=False)
        outer, _ = await tls_connect(client, port, client_context(certs))
        client_tls = await client.tls_transport
        server_side = made[0].app
        server_tls = await server_side.tls_transport
        assert client_tls.get_extra_info("socket") is outer.get_extra_info("socket")
        client_tls.write(b"x" * 300_000)
        server_tls.write(b"y" * 300_000)
        while len(server_side.tls_data) < 300_000 or len(client.tls_data) < 300_000:
            await asyncio.sleep(0.01)
        assert server_side.tls_data == b"x" * 300_000
        assert client.tls_data == b"y" * 300_000
        client_tls.close()  # inner close_notify, then the outer connection's
        assert await client.lost is None
        assert await server_side.lost is None
        assert outer.is_closing()
        await close_server(server)

    run(loop, main())


def test_start_tls_cancelled_closes_the_transport(
    loop: asyncio.AbstractEventLoop, certs: Certs
) -> None:
    async def main() -> None:
        server, port, silent = await plain_server()
        app = App()
        transport, _ = await loop.create_connection(lambda: app, "127.0.0.1", port)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(
                start_tls(loop, transport, app, client_context(certs), server_hostname="localhost"),
                0.2,
            )
        assert transport.is_closing()
        await silent[0].lost
        await close_server(server)

    run(loop, main())


def test_loop_start_tls_on_a_transport_closing_returns_none(
    loop: asyncio.AbstractEventLoop, certs: Certs
) -> None:
    # asyncio (3.11 to 3.13 alike) gives None when the transport's close is
    # under way, after the protocol has heard connection_lost(); aiohttp's
    # client relies on it ("Failed to start TLS (possibly caused by closing
    # transport)").
    async def main() -> None:
        server, port, _ = await plain_server()
        app = App()
        transport, _ = await loop.create_connection(lambda: app, "127.0.0.1", port)
        transport.close()
        upgraded = await loop.start_tls(
            transport, app, client_context(certs), server_hostname="localhost"
        )
        await close_server(server)
        assert upgraded is None
        assert app.events == ["made", ("lost", None)]

    run(loop, main())


def test_loop_start_tls_on_a_transport_already_closed_returns_none(
    loop: asyncio.AbstractEventLoop, loop_kind: str, certs: Certs
) -> None:
    # The protocol has had its connection_lost(): nothing more can happen, and
    # start_tls() says so with None at once.
    if loop_kind == "asyncio":
        # Seen on 3.11.7, 3.12.1 and 3.13.0; it also leaves its TLS transport
        # unclosed, to warn in whichever test collects it.
        pytest.skip(
            "the stdlib loop waits forever here: its handshake never starts on a closed "
            "transport, so its handshake timeout never fires either"
        )

    async def main() -> None:
        server, port, _ = await plain_server()
        app = App()
        transport, _ = await loop.create_connection(lambda: app, "127.0.0.1", port)
        transport.close()
        await app.lost
        upgraded = await loop.start_tls(
            transport, app, client_context(certs), server_hostname="localhost"
        )
        await close_server(server)
        assert upgraded is None
        assert app.events == ["made", ("lost", None)]  # not told twice

    run(loop, main())


def test_loop_start_tls_peer_closing_during_the_handshake(
    loop: asyncio.AbstractEventLoop, certs: Certs
) -> None:
    # The protocol had connection_made() on the plain transport: when the
    # upgrade fails, it gets connection_lost() with the error start_tls raises.
    async def main() -> None:
        server, port, servers = await plain_server()
        app = App()
        transport, _ = await loop.create_connection(lambda: app, "127.0.0.1", port)
        await servers[0].made
        upgrading = loop.create_task(
            loop.start_tls(transport, app, client_context(certs), server_hostname="localhost")
        )
        await servers[0].got_data.wait()  # the ClientHello
        servers[0].transport.close()  # type: ignore[union-attr]
        try:
            with pytest.raises(ConnectionResetError):
                await upgrading
        finally:
            await close_server(server)
        assert isinstance(await app.lost, ConnectionResetError)
        assert [event[0] for event in app.events] == ["m", "lost"]

    run(loop, main())


def test_argument_checks(loop: asyncio.AbstractEventLoop, certs: Certs) -> None:
    context = client_context(certs)

    async def main() -> None:
        with pytest.raises(TypeError, match="SSLContext, got None"):
            await start_tls(loop, None, None, None)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="is not supported by start_tls"):
            await start_tls(loop, None, None, context)  # type: ignore[arg-type]

    run(loop, main())
    with pytest.raises(TypeError, match="is not supported by start_tls"):
        check_start_tls_args(asyncio.Transport(), context)
    with pytest.raises(ValueError, match="ssl_handshake_timeout should be a positive number"):
        TLSProtocol(loop, asyncio.Protocol(), context, None, ssl_handshake_timeout=0)
    with pytest.raises(ValueError, match="ssl_shutdown_timeout should be a positive number"):
        TLSProtocol(loop, asyncio.Protocol(), context, None, ssl_shutdown_timeout=-1)
    with pytest.raises(ValueError, match="Server side SSL needs a valid SSLContext"):
        TLSProtocol(loop, asyncio.Protocol(), None, None, server_side=True)

    kinds: list[Any] = ["connection", "unix_connection", "server", "accepted_socket"]
    for kind in kinds:
        for name in ("ssl_handshake_timeout", "ssl_shutdown_timeout"):
            with pytest.raises(ValueError, match=f"{name} is only meaningful with ssl"):
                check_ssl_args(kind, None, **{name: 1.0})
            with pytest.raises(ValueError, match=f"{name} should be a positive number, got 0"):
                check_ssl_args(kind, context, host="h", server_hostname="h", **{name: 0})
    with pytest.raises(TypeError, match="ssl argument must be an SSLContext or None"):
        check_ssl_args("server", True)
    with pytest.raises(ValueError, match="server_hostname is only meaningful with ssl"):
        check_ssl_args("connection", None, host="example.com", server_hostname="example.com")
    with pytest.raises(ValueError, match="You must set server_hostname when using ssl without"):
        check_ssl_args("connection", True, host=None)
    with pytest.raises(ValueError, match="you have to pass server_hostname when using ssl"):
        check_ssl_args("unix_connection", True)
    assert check_ssl_args("connection", True, host="example.com") == "example.com"
    assert check_ssl_args("connection", context, host="h", server_hostname="") == ""
    assert check_ssl_args("connection", None, host="example.com") is None
    assert check_ssl_args("server", context, ssl_handshake_timeout=5) is None

    assert make_context(context, False, "h") is context
    assert make_context(True, False, "example.com").check_hostname
    assert not make_context(True, False, "").check_hostname
    with pytest.raises(ValueError, match="Server side SSL needs a valid SSLContext"):
        make_context(True, True, None)


# -- errors ----------------------------------------------------------------------------------


def test_corrupted_record_is_an_ssl_error(loop: asyncio.AbstractEventLoop, certs: Certs) -> None:
    async def main() -> None:
        async with connected(certs) as c:
            await c.server[0].handshake
            # Application data record, 16 bytes of garbage: it will not decrypt.
            c.server[0].plain.write(b"\x17\x03\x03\x00\x10" + b"\x00" * 16)
            exc = await c.app.lost
            assert isinstance(exc, ssl.SSLError)
            assert c.transport.is_closing()
            await c.server_app.lost

    # An SSLError is the network's doing: connection_lost gets it, the loop's
    # exception handler does not (the fixture checks).
    run(loop, main())


@pytest.mark.expect_loop_errors
@pytest.mark.parametrize("callback", ["data_received", "eof_received"])
def test_errors_in_application_callbacks_are_reported(
    loop: asyncio.AbstractEventLoop,
    certs: Certs,
    loop_errors: list[dict[str, Any]],
    callback: str,
) -> None:
    class Broken(App):
        def data_received(self, data: bytes) -> None:
            if callback == "data_received":
                raise ValueError("boom")

        def eof_received(self) -> bool:
            raise ValueError("boom")

    class Speaker(App):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            self.transport.write(b"hi")
            self.transport.close()

    async def main() -> None:
        server, port, _ = await tls_server(Speaker, server_context(certs))
        app = Broken()
        await tls_connect(app, port, client_context(certs))
        exc = await app.lost
        assert isinstance(exc, ValueError)
        await close_server(server)

    run(loop, main())
    messages = {
        "data_received": "Fatal error: protocol.data_received() call failed.",
        "eof_received": "Error calling eof_received()",
    }
    assert [c["message"] for c in loop_errors] == [messages[callback]]
    assert isinstance(loop_errors[0]["exception"], ValueError)
    assert isinstance(loop_errors[0]["protocol"], TLSProtocol)


def test_unclosed_transport_warns(loop: asyncio.AbstractEventLoop, certs: Certs) -> None:
    protocol = TLSProtocol(loop, asyncio.Protocol(), client_context(certs), None)
    with pytest.warns(ResourceWarning, match="unclosed transport <SSLTransport"):
        del protocol
        gc.collect()


def test_no_fds_left_behind(loop: asyncio.AbstractEventLoop, certs: Certs) -> None:
    async def main() -> None:
        server, port, _ = await tls_server(App, server_context(certs))
        for _ in range(10):
            app = App()
            transport, _ = await tls_connect(app, port, client_context(certs))
            transport.write(b"ping")
            transport.close()
            await app.lost
        for _ in range(5):
            with pytest.raises(ssl.SSLCertVerificationError):
                await tls_connect(App(), port, ssl.create_default_context())
        await close_server(server)
        await asyncio.sleep(0.05)  # the server's side of the failed ones

    run(loop, asyncio.sleep(0))  # the loop's own fds exist before we count
    before = open_fds()
    run(loop, main())
    gc.collect()
    assert open_fds() == before
