"""Running an application: `AppRunner` and its sites, and `run_app`.

    runner = web.AppRunner(app)
    await runner.setup()                      # freeze, on_startup
    await web.TCPSite(runner, "127.0.0.1", 8080).start()
    ...
    await runner.cleanup()                    # graceful stop, on_shutdown, on_cleanup

`run_app(app)` does all of it on a Treadle loop and stops gracefully on SIGINT
or SIGTERM: it stops accepting, lets in-flight requests finish (their
responses say `Connection: close`) for up to `shutdown_timeout` seconds,
closes idle keep-alive connections at once, then runs the cleanup signals.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from ..http.runner import (
    SERVING_GC_THRESHOLDS,
    BaseSite,
    GracefulExit,
    ServerRunner,
    SockSite,
    TCPSite,
    UnixSite,
    tune_gc_for_serving,
)
from ..http.server import App, ServerConfig
from .app import Application

_Factory = Callable[[], asyncio.BaseProtocol]

__all__ = [
    "SERVING_GC_THRESHOLDS",
    "AppRunner",
    "BaseSite",
    "GracefulExit",
    "SockSite",
    "TCPSite",
    "UnixSite",
    "run_app",
    "tune_gc_for_serving",
]


class AppRunner(ServerRunner):
    """Owns a `web.Application`'s lifecycle and the HTTP server its sites share
    (the server and the graceful stop are `treadle.http.runner.ServerRunner`'s,
    shared with the ASGI and WSGI runners)."""

    def __init__(
        self,
        app: Application,
        *,
        access_log: logging.Logger | None = None,
        shutdown_timeout: float = 60.0,
        config: ServerConfig | None = None,
        handle_signals: bool = False,
        **kwargs: Any,
    ) -> None:
        """`access_log`: a logger for the access log (None: off). `config`: the
        HTTP server's settings (timeouts, limits). `shutdown_timeout`: how long
        in-flight requests may take to finish at cleanup. Other keywords
        (`handler_cancellation=True`, `keepalive_timeout=...`) make the
        `ServerConfig` when `config` is not given."""
        if not isinstance(app, Application):
            raise TypeError(f"app should be a web.Application instance, got {app!r}")
        super().__init__(
            access_log=access_log,
            shutdown_timeout=shutdown_timeout,
            config=config,
            handle_signals=handle_signals,
            **kwargs,
        )
        self._app = app

    @property
    def app(self) -> Application:
        return self._app

    async def _start(self) -> App:
        """Freeze the application and run its startup signals."""
        app = self._app
        app.pre_freeze()
        await app.startup()
        app.freeze()
        return app._handle

    def _server_config(self) -> ServerConfig:
        # Let bodies as large as the applications accept reach them: the HTTP
        # layer's own cap would otherwise refuse them first.
        return self._with_body_limit(super()._server_config(), _max_body(self._app))

    async def _stop(self) -> None:
        """`on_shutdown`, then `on_cleanup` (even if the first failed)."""
        try:
            await self._app.shutdown()
        finally:
            await self._app.cleanup()


def _max_body(app: Application) -> int:
    sizes = [app._client_max_size, *(_max_body(sub) for sub in app._subapps)]
    return max(sizes)


async def _run(
    app: Application | Awaitable[Application],
    *,
    host: str | list[str] | None,
    port: int | None,
    path: str | list[str] | None,
    sock: socket.socket | list[socket.socket] | None,
    shutdown_timeout: float,
    ssl_context: Any,
    print: Callable[..., None] | None,
    backlog: int,
    access_log: logging.Logger | None,
    reuse_address: bool | None,
    reuse_port: bool | None,
    handle_signals: bool,
    config: ServerConfig | None,
    gc_tuning: bool,
    handler_cancellation: bool,
) -> None:
    if not isinstance(app, Application):
        app = await app
    runner = AppRunner(
        app,
        access_log=access_log,
        shutdown_timeout=shutdown_timeout,
        config=config,
        handle_signals=handle_signals,
        **({"handler_cancellation": True} if handler_cancellation and config is None else {}),
    )
    await runner.setup()
    restore_gc = tune_gc_for_serving() if gc_tuning else None
    try:
        sites: list[BaseSite] = []
        hosts = host if isinstance(host, list) else [host]
        if (path is None and sock is None) or host is not None or port is not None:
            for h in hosts:
                sites.append(
                    TCPSite(
                        runner,
                        h,
                        port,
                        ssl_context=ssl_context,
                        backlog=backlog,
                        reuse_address=reuse_address,
                        reuse_port=reuse_port,
                    )
                )
        for p in path if isinstance(path, list) else [path] if path else []:
            sites.append(UnixSite(runner, p, ssl_context=ssl_context, backlog=backlog))
        for s in sock if isinstance(sock, list) else [sock] if sock else []:
            sites.append(SockSite(runner, s, ssl_context=ssl_context, backlog=backlog))
        for site in sites:
            await site.start()
        if print is not None:
            names = ", ".join(site.name for site in sites)
            print(f"======== Running on {names} ========\n(Press CTRL+C to quit)")
        while True:
            await asyncio.sleep(3600)
    finally:
        try:
            await runner.cleanup()
        finally:
            if restore_gc is not None:
                restore_gc()


def run_app(
    app: Application | Awaitable[Application],
    *,
    host: str | list[str] | None = None,
    port: int | None = None,
    path: str | list[str] | None = None,
    sock: socket.socket | list[socket.socket] | None = None,
    shutdown_timeout: float = 60.0,
    ssl_context: Any = None,
    print: Callable[..., None] | None = print,
    backlog: int = 128,
    access_log: logging.Logger | None = None,
    handle_signals: bool = True,
    reuse_address: bool | None = None,
    reuse_port: bool | None = None,
    loop: asyncio.AbstractEventLoop | None = None,
    config: ServerConfig | None = None,
    gc_tuning: bool = True,
    handler_cancellation: bool = False,
) -> None:
    """Serve `app` until SIGINT or SIGTERM, then stop gracefully.

    Runs on a new Treadle loop unless `loop` is given. `access_log` is a
    logger (e.g. `logging.getLogger("treadle.access")`) or None for none.
    `handler_cancellation`: cancel a handler whose client went away (see
    `ServerConfig`; with `config` given, set it there instead).
    `gc_tuning`: tune the garbage collector for serving once the app has
    started (see `tune_gc_for_serving`).
    """
    if config is not None and handler_cancellation and not config.handler_cancellation:
        raise ValueError(
            "run_app(handler_cancellation=True) with a config that says False: "
            "set handler_cancellation in the ServerConfig"
        )
    if loop is None:
        from ..runners import new_event_loop

        loop = new_event_loop()
        owned = True
    else:
        owned = False
    main = loop.create_task(
        _run(
            app,
            host=host,
            port=port,
            path=path,
            sock=sock,
            shutdown_timeout=shutdown_timeout,
            ssl_context=ssl_context,
            print=print,
            backlog=backlog,
            access_log=access_log,
            reuse_address=reuse_address,
            reuse_port=reuse_port,
            handle_signals=handle_signals,
            config=config,
            gc_tuning=gc_tuning,
            handler_cancellation=handler_cancellation,
        )
    )
    try:
        loop.run_until_complete(main)
    except (GracefulExit, KeyboardInterrupt):
        pass
    finally:
        if not main.done():
            main.cancel()
            try:
                loop.run_until_complete(main)
            except (asyncio.CancelledError, GracefulExit, KeyboardInterrupt):
                pass
        if owned:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                loop.close()
        sys.stdout.flush()
