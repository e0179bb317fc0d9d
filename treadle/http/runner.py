"""Running an HTTP application: the server its sites share, and the graceful stop.

What every interface `treadle run` serves has in common, whatever calls the
application: `web.AppRunner` (treadle.web), `asgi.ASGIRunner` (ASGI 3) and
`wsgi.WSGIRunner` (WSGI) are `ServerRunner`s that differ only in how the
application starts (`_start()`, which returns the HTTP layer's application
callable) and stops (`_stop()`). So the server's strictness, limits,
timeouts and graceful stop hold for every interface, in one place:

    runner = SomeRunner(...)
    await runner.setup()                      # the application starts; the server is made
    await TCPSite(runner, "127.0.0.1", 8080).start()
    ...
    await runner.cleanup()                    # stop accepting, drain, then the application stops

The sites (`TCPSite`, `UnixSite`, `SockSite`) listen for a runner; `treadle.web`
re-exports them under aiohttp's names. Uses asyncio's public API only.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
from collections.abc import Callable, Coroutine
from typing import Any

from .body import Body
from .log import with_access_log
from .parser import Limits, Request
from .server import App, HTTPServer, ResponseWriter, ServerConfig

#: A body-size limit that is none: for interfaces that stream the body to the
#: application (ASGI, WSGI), which has its own rules, as uvicorn and gunicorn.
NO_BODY_LIMIT = 1 << 62

__all__ = [
    "SERVING_GC_THRESHOLDS",
    "BaseSite",
    "GracefulExit",
    "ServerRunner",
    "SockSite",
    "TCPSite",
    "UnixSite",
    "tune_gc_for_serving",
]


#: Collection thresholds for a serving process: see `tune_gc_for_serving()`.
SERVING_GC_THRESHOLDS = (20_000, 10, 10)


def tune_gc_for_serving(
    thresholds: tuple[int, int, int] = SERVING_GC_THRESHOLDS,
) -> Callable[[], None]:
    """Ready the garbage collector of a process that is about to serve.

    What startup made (the application, every imported module) is frozen into
    the permanent generation, so no collection scans it again; and the young
    generation is collected less often (20,000 allocations instead of 700).
    Why: a request's objects live as long as the request. With thousands of
    requests in flight (slow handlers, many clients), the default thresholds
    promote them in bulk and trigger full collections over every live
    connection. Measured with `bench/http.py`, 10,000 connections whose handler
    sleeps 0.5 s: 13.0k -> 18.3k req/s; memory unchanged. `run_app` and
    `treadle run` call this unless told not to (`gc_tuning=False`,
    `--no-gc-tuning`). Returns a function that puts the previous settings back.
    """
    previous = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)

    def restore() -> None:
        gc.set_threshold(*previous)
        gc.unfreeze()

    return restore


class GracefulExit(SystemExit):
    """Raised to stop `run_app` the way SIGTERM does."""

    code = 1


class ServerRunner:
    """The HTTP server an application's sites share, and its graceful stop.

    Subclasses say how the application starts (`_start()`, returning the
    HTTP layer's application callable) and stops (`_stop()`), and may adjust
    the server's settings (`_server_config()`).

    - `shutdown_timeout`: how long in-flight requests (and upgraded
      connections such as WebSockets) may take to finish at cleanup.
    - `config`: the HTTP server's settings; or give them as keywords
      (`keepalive_timeout=...`), which are checked now.
    - `handle_signals`: SIGINT and SIGTERM raise `GracefulExit` (run_app's).
    - `access_log`: a logger for the access log (None: off), the same for
      every interface.
    - `request_hook`: called with the request's `ResponseWriter` as each
      request reaches the application (`treadle run`'s workers count their
      requests with it, and mark them `force_close()` once replaced); None:
      nothing is added to a request's path.
    """

    def __init__(
        self,
        *,
        access_log: logging.Logger | None = None,
        shutdown_timeout: float = 60.0,
        config: ServerConfig | None = None,
        handle_signals: bool = False,
        request_hook: Callable[[ResponseWriter], None] | None = None,
        **kwargs: Any,
    ) -> None:
        if config is not None and kwargs:
            raise TypeError(
                f"{type(self).__name__} got both config and server settings "
                f"({', '.join(sorted(kwargs))}): put the settings in the ServerConfig"
            )
        if kwargs:
            ServerConfig(**kwargs)  # refuse unknown or invalid settings now, not at setup()
        self._access_log = access_log
        self._shutdown_timeout = shutdown_timeout
        self._config = config
        self._kwargs = kwargs
        self._server: HTTPServer | None = None
        self._sites: list[BaseSite] = []
        self._handle_signals = handle_signals
        self._request_hook = request_hook

    @property
    def server(self) -> HTTPServer | None:
        """The HTTP server (a protocol factory), once `setup()` has run."""
        return self._server

    @property
    def sites(self) -> set[BaseSite]:
        return set(self._sites)

    @property
    def addresses(self) -> list[Any]:
        """The addresses the sites listen on (useful with port 0)."""
        out: list[Any] = []
        for site in self._sites:
            out.extend(s.getsockname() for s in _sockets(site._server))
        return out

    async def _start(self) -> App:
        """Start the application; the callable the HTTP server runs per request."""
        raise NotImplementedError

    async def _stop(self) -> None:
        """Stop the application, once the server has drained."""

    def _server_config(self) -> ServerConfig:
        return self._config or ServerConfig(**self._kwargs)

    def _with_body_limit(self, config: ServerConfig, size: int) -> ServerConfig:
        """`config` with the HTTP layer's body cap raised to `size` if it is
        lower, unless the caller chose limits of their own (`config=` or
        `limits=`): the application, not the server's default, decides how
        large a body may reach it."""
        if self._config is not None or "limits" in self._kwargs:
            return config
        current = config.limits
        if size <= current.max_body_size:
            return config
        limits = Limits(
            **{name: getattr(current, name) for name in Limits.__slots__} | {"max_body_size": size}
        )
        return ServerConfig(**{**self._kwargs, "limits": limits})

    async def setup(self) -> None:
        """Start the application and make the server."""
        if self._server is not None:
            raise RuntimeError(f"{type(self).__name__}.setup() was already called")
        if self._handle_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                try:
                    loop.add_signal_handler(sig, _raise_graceful_exit)
                except (NotImplementedError, RuntimeError):
                    pass
        app = await self._start()
        if self._access_log is not None:
            app = with_access_log(app, self._access_log)
        if self._request_hook is not None:
            app = _with_hook(app, self._request_hook)
        self._server = HTTPServer(app, self._server_config())

    def stop_accepting(self) -> None:
        """Stop every site from accepting; open connections carry on as they
        were (`shutdown()` then finishes them)."""
        for site in list(self._sites):
            site._stop_listening()

    async def shutdown(self) -> None:
        """Stop every site from accepting; finish and close the connections."""
        self.stop_accepting()
        if self._server is not None:
            await self._server.shutdown(self._shutdown_timeout)
        for site in list(self._sites):
            await site._wait_closed()

    async def cleanup(self) -> None:
        """Graceful stop, then the application's own."""
        if self._server is None:
            return
        await self.shutdown()
        try:
            await self._stop()
        finally:
            self._sites.clear()
            self._server = None
            if self._handle_signals:
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    try:
                        loop.remove_signal_handler(sig)
                    except (NotImplementedError, RuntimeError):
                        pass

    def _reg_site(self, site: BaseSite) -> None:
        if site in self._sites:
            raise RuntimeError(f"Site {site} is already registered in runner {self}")
        self._sites.append(site)


def _with_hook(app: App, hook: Callable[[ResponseWriter], None]) -> App:
    """`app`, calling `hook(writer)` first for each request."""

    def hooked(message: Request, body: Body, writer: ResponseWriter) -> Coroutine[Any, Any, None]:
        # A plain function handing back app's coroutine: no extra frame per request.
        hook(writer)
        return app(message, body, writer)

    return hooked


def _sockets(server: asyncio.AbstractServer | None) -> tuple[Any, ...]:
    return tuple(getattr(server, "sockets", ()) or ()) if server is not None else ()


def _raise_graceful_exit() -> None:
    raise GracefulExit()


class BaseSite:
    """A place a runner listens on."""

    def __init__(
        self, runner: ServerRunner, *, ssl_context: Any = None, backlog: int = 128
    ) -> None:
        if runner.server is None:
            raise RuntimeError("Call runner.setup() before making a site")
        self._runner = runner
        self._ssl_context = ssl_context
        self._backlog = backlog
        self._server: asyncio.AbstractServer | None = None

    @property
    def name(self) -> str:
        raise NotImplementedError

    async def _make_server(
        self, factory: Callable[[], asyncio.BaseProtocol]
    ) -> asyncio.AbstractServer:
        raise NotImplementedError

    async def start(self) -> None:
        """Start listening."""
        self._runner._reg_site(self)
        assert self._runner.server is not None
        self._server = await self._make_server(self._runner.server)

    def _stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _wait_closed(self) -> None:
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def stop(self) -> None:
        """Stop listening (connections already open carry on)."""
        self._stop_listening()
        await self._wait_closed()
        if self in self._runner._sites:
            self._runner._sites.remove(self)


class TCPSite(BaseSite):
    """Listen on `host`:`port` (all interfaces when host is None)."""

    def __init__(
        self,
        runner: ServerRunner,
        host: str | None = None,
        port: int | None = None,
        *,
        ssl_context: Any = None,
        backlog: int = 128,
        reuse_address: bool | None = None,
        reuse_port: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._host = host
        self._port = (8443 if ssl_context else 8080) if port is None else port
        self._reuse_address = reuse_address
        self._reuse_port = reuse_port

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        host = self._host or "0.0.0.0"
        sockets = _sockets(self._server)
        if sockets:
            host, port = sockets[0].getsockname()[:2]
        else:
            port = self._port
        return f"{scheme}://{host}:{port}"

    async def _make_server(
        self, factory: Callable[[], asyncio.BaseProtocol]
    ) -> asyncio.AbstractServer:
        loop = asyncio.get_running_loop()
        return await loop.create_server(
            factory,
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )


class UnixSite(BaseSite):
    """Listen on the Unix socket at `path`."""

    def __init__(
        self, runner: ServerRunner, path: str, *, ssl_context: Any = None, backlog: int = 128
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._path = os.fspath(path)

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://unix:{self._path}:"

    async def _make_server(
        self, factory: Callable[[], asyncio.BaseProtocol]
    ) -> asyncio.AbstractServer:
        loop = asyncio.get_running_loop()
        return await loop.create_unix_server(
            factory, self._path, ssl=self._ssl_context, backlog=self._backlog
        )


class SockSite(BaseSite):
    """Listen on a socket made elsewhere (inherited from a parent, say)."""

    def __init__(
        self,
        runner: ServerRunner,
        sock: socket.socket,
        *,
        ssl_context: Any = None,
        backlog: int = 128,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._sock = sock

    @property
    def name(self) -> str:
        return f"sock:{self._sock.getsockname()!r}"

    async def _make_server(
        self, factory: Callable[[], asyncio.BaseProtocol]
    ) -> asyncio.AbstractServer:
        loop = asyncio.get_running_loop()
        return await loop.create_server(
            factory, sock=self._sock, ssl=self._ssl_context, backlog=self._backlog
        )
