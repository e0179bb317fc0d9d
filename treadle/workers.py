"""Serving an application from the command line: in one process, or pre-forked workers.

`treadle run module:app` ends in `serve()`. With one worker (the default) the
process serves by itself. With `--workers N` it becomes a *parent* that binds
the listening sockets, forks N worker processes, each running Treadle's event
loop, and looks after them:

- **The application is imported in each worker, after the fork**, never in the
  parent. Forking a process that has threads or an event loop is unsafe (a lock
  another thread held stays held in the child; the loop's poller and signal
  fds would be shared), and importing an application may start either: a
  database pool, a logging thread. So the parent stays small (standard library,
  no loop, no application) and import-time side effects run once per worker,
  as under gunicorn's and uvicorn's default. The price is memory that is not
  shared between workers, and an import error met N times: workers report it
  to the parent over a pipe, and the parent prints it once and exits 2.
- **Sockets.** The parent binds first, so a bad or busy address fails once,
  before any fork, and port 0 becomes one real port that every worker shares.
  On Linux each worker then binds its own socket to that address with
  `SO_REUSEPORT` and the kernel spreads new connections evenly among them; the
  parent's socket is bound but never listens, so it holds the port without
  taking connections. Elsewhere (and always for Unix sockets, or with
  `reuse_port=False`) the parent listens and the workers inherit that one
  socket and all accept from it (a `SockSite` each). One trade-off of
  `SO_REUSEPORT`: connections still queued on a worker that dies are reset.
- **Restarts.** A worker that exits while the server is not stopping is
  replaced. One that dies before it is ready, or within `STARTUP_WINDOW`
  seconds of starting, is replaced after a delay that doubles with each such
  death in a row; after `MAX_EARLY_DEATHS` of them the parent gives up (exit 1)
  instead of forking in a loop.
- **Signals.** One rule everywhere (`_on_stop_signal`): the first SIGINT or
  SIGTERM starts a graceful stop; while stopping, a SIGINT cuts it short and a
  SIGTERM changes nothing. SIGINT is a person at a terminal pressing Ctrl+C
  again; SIGTERM comes from process managers, which send it to every process
  at once (systemd's default `KillMode=control-group`, `kill -TERM -PGID`)
  and may repeat it, so another one must not undo the graceful stop the
  first asked for.
  The parent passes the first stop on to every worker as SIGTERM, even though
  a group signal has reached them already: it cannot tell, and a worker told
  twice carries on with the stop it is making, quietly. A worker stops
  gracefully: it stops accepting, lets in-flight requests finish with
  `Connection: close`, closes idle keep-alive connections, runs `on_shutdown`
  and `on_cleanup`, and ignores SIGTERM while it closes its loop. The parent
  waits up to `shutdown_timeout + KILL_GRACE` seconds, kills what is left
  with SIGKILL, and exits 0 (1 if it had to kill). A SIGINT during the stop
  kills the workers at once (exit 1); a SIGTERM gets a note and is otherwise
  ignored. Workers ignore SIGINT, so the Ctrl+C a terminal sends to the
  whole process group reaches them once, through the parent. A worker whose
  parent has gone stops by itself.

In a single process the same rule holds: the first SIGINT or SIGTERM stops
gracefully in the same way, a SIGINT during the stop abandons it (exit 1),
and a SIGTERM gets a note and is otherwise ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import importlib
import inspect
import logging
import os
import select
import signal
import socket
import stat
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .http.runner import ServerRunner

__all__ = [
    "EXIT_APP_ERROR",
    "INTERFACES",
    "KILL_GRACE",
    "MAX_EARLY_DEATHS",
    "STARTUP_WINDOW",
    "AppLoadError",
    "AppTarget",
    "ServeOptions",
    "run_server",
    "serve",
]

PROG = "treadle run"
EXIT_APP_ERROR = 2
"""Exit status when `module:app` does not name an application (or a bad option)."""
STARTUP_WINDOW = 5.0
"""A worker that dies within this many seconds of starting counts as an early death."""
MAX_EARLY_DEATHS = 5
"""After this many early deaths in a row, the parent gives up."""
FIRST_BACKOFF = 0.1
MAX_BACKOFF = 5.0
KILL_GRACE = 5.0
"""Seconds a stopping worker gets beyond `shutdown_timeout` (for the cleanup signals)."""
PARENT_CHECK_INTERVAL = 1.0


class _Stop(enum.Enum):
    """What a stop signal does, by `_on_stop_signal`."""

    BEGIN = "begin"
    """Stop gracefully."""
    ABANDON = "abandon"
    """Give the graceful stop up (the single process exits 1; the parent kills its workers)."""
    IGNORE = "ignore"
    """Nothing: already stopping gracefully."""


def _on_stop_signal(signum: int, stopping: bool) -> _Stop:
    """The one rule for SIGINT and SIGTERM, followed by the single process, a
    worker and the parent alike. Only SIGINT cuts a stop short: it is a person
    at a terminal pressing Ctrl+C again, while SIGTERM comes from process
    managers that send it to every process of a group (and may send it again),
    so a repeated SIGTERM must not undo the graceful stop the first asked for."""
    if not stopping:
        return _Stop.BEGIN
    return _Stop.ABANDON if signum == signal.SIGINT else _Stop.IGNORE


_ALREADY_STOPPING = "SIGTERM: already stopping gracefully (SIGINT again stops at once)"


class AppLoadError(Exception):
    """`module:attribute` does not name an application; the message is one line."""


INTERFACES = ("auto", "web", "asgi", "wsgi")
"""What `--interface` accepts: "auto" detects web and ASGI; WSGI must be named."""


def interface_of(obj: Any, interface: str = "auto") -> str:
    """The interface `obj` is served with ("web", "asgi" or "wsgi"), or
    `AppLoadError` saying why it cannot be. "auto" takes a
    `web.Application` natively and an ASGI 3 callable as ASGI; a WSGI app
    (a plain callable of two arguments) must be named, since nothing tells
    it apart from other callables."""
    from .asgi import asgi2_hint, is_asgi_app
    from .web.app import Application

    if interface == "web" or (interface == "auto" and isinstance(obj, Application)):
        if not isinstance(obj, Application):
            raise AppLoadError(f"is {_kind(obj)}, not a web.Application (--interface web)")
        return "web"
    if interface in ("asgi", "auto"):
        hint = asgi2_hint(obj)
        if hint is not None:
            raise AppLoadError(f"is not an ASGI 3 application: {hint}")
        if is_asgi_app(obj) or (interface == "asgi" and callable(obj)):
            return "asgi"
        if interface == "asgi":
            raise AppLoadError(f"is {_kind(obj)}, not an ASGI 3 application (--interface asgi)")
        wsgi = " (a WSGI app? add --interface wsgi)" if callable(obj) else ""
        raise AppLoadError(f"is {_kind(obj)}, not a web.Application or an ASGI 3 application{wsgi}")
    if interface == "wsgi":
        if not callable(obj) or isinstance(obj, Application):
            raise AppLoadError(f"is {_kind(obj)}, not a WSGI application (--interface wsgi)")
        return "wsgi"
    raise AppLoadError(f"unknown interface {interface!r} (one of {', '.join(INTERFACES)})")


@dataclass(frozen=True)
class AppTarget:
    """What `treadle run` serves: `module:attribute` names the application,
    or with `factory` a callable (sync or async) that returns one. The
    attribute may be dotted (`module:holder.app`). `interface` is how it is
    served: a `web.Application` natively, an ASGI 3 app, a WSGI app
    ("auto" detects the first two; see `interface_of`)."""

    spec: str
    factory: bool = False
    interface: str = "auto"
    obj: Any = field(default=None, compare=False, repr=False)
    """The application itself, for `serve(app)` from a script (no import)."""

    def __post_init__(self) -> None:
        module, colon, attr = self.spec.partition(":")
        if not colon or not module or not attr:
            raise AppLoadError(f"APP must look like 'module:attribute', got {self.spec!r}")
        if self.interface not in INTERFACES:
            raise AppLoadError(
                f"unknown interface {self.interface!r} (one of {', '.join(INTERFACES)})"
            )

    def load(self) -> Any:
        """Import the module (the current directory first on `sys.path`) and
        return the named object, checked: an application of the interface,
        or with `factory` a callable. Raises `AppLoadError` for what is the
        caller's mistake; an exception raised by the module's own code
        propagates as it is."""
        if self.obj is not None:
            if self.factory:
                return self.obj
            interface_of(self.obj, self.interface)
            return self.obj
        module_name, _, attr_path = self.spec.partition(":")
        cwd = os.getcwd()
        if cwd not in sys.path and "" not in sys.path:
            sys.path.insert(0, cwd)
        try:
            obj: Any = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            # A missing module the user named is their typo; one missing inside
            # their module is a bug there, best shown with its traceback.
            missing = exc.name or ""
            if missing and (module_name == missing or module_name.startswith(missing + ".")):
                raise AppLoadError(f"no module named {missing!r} (from {self.spec!r})") from None
            raise
        for part in attr_path.split("."):
            try:
                obj = getattr(obj, part)
            except AttributeError:
                raise AppLoadError(
                    f"module {module_name!r} has no attribute {attr_path!r}"
                ) from None
        if self.factory:
            if not callable(obj):
                raise AppLoadError(f"--factory needs a callable, but {self.spec!r} is {_kind(obj)}")
            return obj
        try:
            interface_of(obj, self.interface)
        except AppLoadError as exc:
            hint = (
                " (a factory? add --factory)" if callable(obj) and self.interface == "auto" else ""
            )
            raise AppLoadError(f"{self.spec!r} {exc}{hint}") from None
        return obj

    async def application(self, loaded: Any) -> tuple[str, Any]:
        """The interface and the application from what `load()` returned,
        calling (and awaiting) the factory on the running loop."""
        if not self.factory:
            return interface_of(loaded, self.interface), loaded
        app = loaded()
        if asyncio.iscoroutine(app) or isinstance(app, asyncio.Future):
            app = await app
        try:
            return interface_of(app, self.interface), app
        except AppLoadError as exc:
            what = str(exc).removeprefix("is ")
            raise AppLoadError(f"factory {self.spec!r} returned {what}") from None


def _takes_no_arguments(obj: object) -> bool:
    """Whether `obj` can be called with no arguments (a factory, maybe)."""
    if not callable(obj):
        return False
    try:
        inspect.signature(obj).bind()
    except (TypeError, ValueError):
        return False
    return True


def _kind(obj: object) -> str:
    name = type(obj).__name__
    return f"an {name}" if name[:1].lower() in "aeiou" else f"a {name}"


@dataclass(frozen=True)
class ServeOptions:
    """How `serve()` runs: what `treadle run` parsed from its command line."""

    target: AppTarget
    host: str = "127.0.0.1"
    port: int = 8080
    tcp: bool = True
    """Listen on host:port (False with `--unix` alone)."""
    unix: str | None = None
    workers: int = 1
    access_log: bool = False
    shutdown_timeout: float = 30.0
    backlog: int = 2048
    reuse_port: bool | None = None
    """Workers bind their own sockets with SO_REUSEPORT (None: on Linux, where
    the kernel balances them; elsewhere they share one inherited socket)."""
    gc_tuning: bool = True
    """Tune the garbage collector once the app has started (tune_gc_for_serving)."""
    handler_cancellation: bool = False
    """Cancel a handler that is waiting when its client goes away (ServerConfig)."""
    keepalive_timeout: float | None = None
    """Seconds an idle keep-alive connection stays open (None: the server's 75)."""
    proxy_headers: bool = False
    """Believe forwarding headers from `forwarded_allow_ips`."""
    forwarded_allow_ips: str = ""
    """Trusted proxies: comma-separated IPs and networks, or "*"."""
    proxy_protocol: bool = False
    """Trusted proxies send the PROXY protocol before HTTP."""
    limit_concurrency: int | None = None
    """Requests in flight per worker past which a request gets 503."""
    max_connections: int | None = None
    """Open connections per worker past which new ones are closed."""
    lifespan: str = "auto"
    """ASGI: run the app's lifespan ("auto", "on", "off")."""
    root_path: str = ""
    """ASGI and WSGI: where the app is mounted (`root_path`, `SCRIPT_NAME`)."""
    limit_request_body: int | None = None
    """ASGI and WSGI: the largest request body (None: no limit)."""
    ws_max_size: int = 16 * 1024 * 1024
    """ASGI: the largest WebSocket message."""
    ws_ping_interval: float | None = 20.0
    """ASGI: seconds of WebSocket silence before a ping (None: none)."""
    ws_ping_timeout: float | None = 20.0
    """ASGI: seconds a ping's answer may take."""
    ws_per_message_deflate: bool = True
    """ASGI: accept permessage-deflate."""
    wsgi_threads: int | None = None
    """WSGI: threads that run the app (None: min(32, CPUs + 4))."""


def _error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)


def _note(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def run_server(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    interface: str = "auto",
    workers: int = 1,
    factory: bool = False,
    **options: Any,
) -> int:
    """Serve an application as `treadle run` does, from a script or a test
    (`uvicorn.run`'s counterpart): `treadle.run_server(app, port=8000)`.

    `app` is the application (a `web.Application`, an ASGI 3 app, or with
    `interface="wsgi"` a WSGI app) or an import string `"module:attribute"`,
    which `workers` > 1 needs (each worker imports it after the fork, see
    the module docstring). Other keywords are `ServeOptions`' (`unix`,
    `access_log`, `shutdown_timeout`, `lifespan`, `root_path`...). Blocks
    until SIGINT or SIGTERM, then stops gracefully; returns the exit status."""
    if isinstance(app, str):
        target = AppTarget(app, factory=factory, interface=interface)
    else:
        if workers > 1:
            raise ValueError(
                "run_server(workers > 1) needs the app as an import string 'module:attribute': "
                "each worker imports it after the fork"
            )
        target = AppTarget(f"{type(app).__module__}:app", factory, interface, obj=app)
    return serve(ServeOptions(target=target, host=host, port=port, workers=workers, **options))


def serve(options: ServeOptions) -> int:
    """Serve until SIGINT or SIGTERM, then stop gracefully; return the exit
    status (0 after a graceful stop, 2 when the app cannot be loaded, 1 for
    other failures)."""
    if options.workers == 1:
        return _serve_single(options)
    return _serve_prefork(options)


# -- listening sockets -----------------------------------------------------------------------


@dataclass
class _Listener:
    sock: socket.socket
    shared: bool
    """True: workers serve on this very socket; False: each binds its own."""
    unix_file: tuple[str, int, int] | None = None
    """(path, st_dev, st_ino) of the socket file we made: removed at the end if
    it is still ours (another server may have bound the path since)."""

    @property
    def url(self) -> str:
        address = self.sock.getsockname()
        if self.sock.family == socket.AF_UNIX:
            return f"http://unix:{address}:"
        host, port = address[:2]
        if self.sock.family == socket.AF_INET6:
            host = f"[{host}]"
        return f"http://{host}:{port}"

    def close(self) -> None:
        self.sock.close()
        if self.unix_file is not None:
            (path, dev, ino), self.unix_file = self.unix_file, None
            with contextlib.suppress(OSError):
                st = os.stat(path)
                if (st.st_dev, st.st_ino) == (dev, ino):
                    os.remove(path)


def _bind(options: ServeOptions, reuse_port: bool) -> list[_Listener]:
    """Bind every address of the options; with `reuse_port`, TCP sockets are
    bound only (workers listen on their own), others listen at once."""
    listeners: list[_Listener] = []
    try:
        if options.tcp:
            listeners += _bind_tcp(options.host, options.port, options.backlog, reuse_port)
        if options.unix is not None:
            listeners.append(_bind_unix(options.unix, options.backlog))
    except BaseException:
        for listener in listeners:
            listener.close()
        raise
    return listeners


def _bind_tcp(host: str, port: int, backlog: int, reuse_port: bool) -> list[_Listener]:
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    listeners: list[_Listener] = []
    seen: set[tuple[int, Any]] = set()
    try:
        for family, kind, proto, _, address in infos:
            if (family, address) in seen:
                continue
            seen.add((family, address))
            if port == 0 and listeners:
                # Port 0 on several addresses: one free port for all of them.
                address = (address[0], listeners[0].sock.getsockname()[1], *address[2:])
            sock = socket.socket(family, kind, proto)
            listeners.append(_Listener(sock, shared=not reuse_port))
            _prepare_tcp(sock, reuse_port)
            sock.bind(address)
            if not reuse_port:
                sock.listen(backlog)
    except BaseException:
        for listener in listeners:
            listener.close()
        raise
    return listeners


def _prepare_tcp(sock: socket.socket, reuse_port: bool) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if sock.family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
        # One socket per family, as asyncio does: no IPv4-mapped surprises.
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)


def _bind_unix(path: str, backlog: int) -> _Listener:
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.stat(path).st_mode):
            # A socket file left by a server that is gone is replaced; one that
            # still answers belongs to a live server and is not stolen.
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                try:
                    probe.connect(path)
                except ConnectionRefusedError:
                    os.remove(path)
                else:
                    raise OSError(f"{path} is in use by another server")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        sock.listen(backlog)
        st = os.stat(path)
    except BaseException:
        sock.close()
        raise
    return _Listener(sock, shared=True, unix_file=(path, st.st_dev, st.st_ino))


def _own_socket(parent: socket.socket, backlog: int) -> socket.socket:
    """A worker's listening socket on the parent's address, with SO_REUSEPORT."""
    sock = socket.socket(parent.family, socket.SOCK_STREAM)
    try:
        _prepare_tcp(sock, reuse_port=True)
        sock.bind(parent.getsockname())
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def _default_reuse_port() -> bool:
    # Only Linux spreads connections over SO_REUSEPORT sockets evenly; on BSDs
    # and macOS the option exists but the last socket bound gets them all.
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def _banner(listeners: list[_Listener], workers: int) -> str:
    urls = ", ".join(listener.url for listener in listeners)
    plural = "" if workers == 1 else "s"
    return f"======== Running on {urls} ({workers} worker{plural}) ========"


# -- one serving process ------------------------------------------------------------------------


def _enable_access_log() -> None:
    log = logging.getLogger("treadle.access")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


@dataclass
class _ServingProcess:
    """One process serving the application on `sockets`: the single process,
    or a worker (which also watches for its parent going away)."""

    options: ServeOptions
    loaded: Any
    sockets: list[socket.socket]
    announce: Callable[[], None]
    stop_signals: tuple[int, ...]
    parent_pid: int | None = None

    def run(self) -> int:
        """Serve on a new Treadle loop until a stop signal; the exit status.
        Raises `AppLoadError` when a factory returns no application."""
        from .runners import new_event_loop

        if self.options.access_log:
            _enable_access_log()
        # asyncio.Runner closes the loop as asyncio.run does: leftover tasks
        # cancelled, async generators and the default executor shut down.
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            try:
                runner.run(self._serve())
            except asyncio.CancelledError:
                _error("SIGINT while stopping: the graceful stop was cut short")
                return 1
        return 0

    async def _serve(self) -> None:
        from .asgi import LifespanFailure
        from .http.runner import SockSite, tune_gc_for_serving

        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        task = asyncio.current_task()
        assert task is not None

        def on_signal(signum: int) -> None:
            action = _on_stop_signal(signum, stopping.is_set())
            if action is _Stop.BEGIN:
                stopping.set()
            elif action is _Stop.ABANDON:
                task.cancel()
            elif self.parent_pid is None:
                # A worker says nothing: its parent passing a group's SIGTERM
                # on is the usual way for it to be told twice.
                _note(_ALREADY_STOPPING)

        for sig in self.stop_signals:
            loop.add_signal_handler(sig, on_signal, sig)
        try:
            options = self.options
            interface, app = await options.target.application(self.loaded)
            runner = _make_runner(interface, app, options)
            try:
                await runner.setup()
            except LifespanFailure as exc:
                raise AppLoadError(f"the app's lifespan startup failed: {exc}") from None
            if options.gc_tuning:
                tune_gc_for_serving()
            try:
                if not stopping.is_set():
                    for sock in self.sockets:
                        await SockSite(runner, sock, backlog=options.backlog).start()
                    self.announce()
                    await self._until_stopped(stopping)
            finally:
                await runner.cleanup()
        finally:
            # Removing the loop's handler restores the default action, which
            # for SIGTERM ends the process: a late one (the parent passing on
            # a signal the worker had already) would cut short the loop's
            # close that follows. So SIGTERM is ignored from here on, set
            # while it is blocked so that none arrives in between.
            blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
            try:
                for sig in self.stop_signals:
                    loop.remove_signal_handler(sig)
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)

    async def _until_stopped(self, stopping: asyncio.Event) -> None:
        if self.parent_pid is None:
            await stopping.wait()
            return
        while True:
            try:
                await asyncio.wait_for(stopping.wait(), PARENT_CHECK_INTERVAL)
                return
            except TimeoutError:
                if os.getppid() != self.parent_pid:
                    _note(f"worker {os.getpid()}: the parent process is gone; stopping")
                    return


def _make_runner(interface: str, app: Any, options: ServeOptions) -> ServerRunner:
    """The runner of `app` for its interface, with the options that apply."""
    settings: dict[str, Any] = {
        "access_log": logging.getLogger("treadle.access") if options.access_log else None,
        "shutdown_timeout": options.shutdown_timeout,
        "handler_cancellation": options.handler_cancellation,
    }
    if options.keepalive_timeout is not None:
        settings["keepalive_timeout"] = options.keepalive_timeout
    if options.forwarded_allow_ips:
        from .http.proxy import TrustedProxies

        settings["trusted_proxies"] = TrustedProxies(options.forwarded_allow_ips)
        settings["proxy_headers"] = options.proxy_headers
        settings["proxy_protocol"] = options.proxy_protocol
    if options.limit_concurrency is not None:
        settings["limit_concurrency"] = options.limit_concurrency
    if options.max_connections is not None:
        settings["max_connections"] = options.max_connections
    if interface == "web":
        from .web.runner import AppRunner

        return AppRunner(app, **settings)
    if interface == "asgi":
        from .asgi import ASGIRunner, WebSocketSettings

        return ASGIRunner(
            app,
            lifespan=options.lifespan,
            root_path=options.root_path,
            limit_request_body=options.limit_request_body,
            websocket=WebSocketSettings(
                max_size=options.ws_max_size,
                ping_interval=options.ws_ping_interval,
                ping_timeout=options.ws_ping_timeout,
                per_message_deflate=options.ws_per_message_deflate,
            ),
            **settings,
        )
    from .wsgi import WSGIRunner

    return WSGIRunner(
        app,
        root_path=options.root_path,
        limit_request_body=options.limit_request_body,
        threads=options.wsgi_threads,
        **settings,
    )


def _serve_single(options: ServeOptions) -> int:
    try:
        loaded = options.target.load()
    except AppLoadError as exc:
        _error(str(exc))
        return EXIT_APP_ERROR
    try:
        listeners = _bind(options, reuse_port=False)
    except OSError as exc:
        _error(f"cannot listen: {exc}")
        return 1
    previous = signal.getsignal(signal.SIGTERM)
    try:
        return _ServingProcess(
            options,
            loaded,
            [listener.sock for listener in listeners],
            lambda: print(_banner(listeners, 1), flush=True),
            (signal.SIGINT, signal.SIGTERM),
        ).run()
    except AppLoadError as exc:
        _error(str(exc))
        return EXIT_APP_ERROR
    finally:
        if previous is not None:  # None: not set from Python, nothing to restore
            # The serving ignored SIGTERM once done: the caller's handler comes back.
            signal.signal(signal.SIGTERM, previous)
        for listener in listeners:
            listener.close()


# -- the parent of pre-forked workers -----------------------------------------------------------


def _serve_prefork(options: ServeOptions) -> int:
    reuse_port = _default_reuse_port() if options.reuse_port is None else options.reuse_port
    try:
        listeners = _bind(options, reuse_port=reuse_port)
    except OSError as exc:
        _error(f"cannot listen: {exc}")
        return 1
    try:
        return _Supervisor(options, listeners).run()
    finally:
        for listener in listeners:
            listener.close()


@dataclass
class _Worker:
    started: float
    ready: bool = False


@dataclass
class _Supervisor:
    """The parent: forks the workers, replaces the ones that die, stops them."""

    options: ServeOptions
    listeners: list[_Listener]
    workers: dict[int, _Worker] = field(default_factory=dict)
    restarts_due: list[float] = field(default_factory=list)
    early_deaths: int = 0
    stopping: bool = False
    killed: bool = False
    deadline: float = 0.0
    status: int = 0
    announced: bool = False
    messages: bytes = b""
    wake: tuple[int, int] = (-1, -1)
    channel: tuple[int, int] = (-1, -1)

    def run(self) -> int:
        """Fork the workers and look after them until they have all stopped."""
        self.wake = os.pipe()
        self.channel = os.pipe()
        for fd in (*self.wake, self.channel[0]):
            os.set_blocking(fd, False)
        watched = (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD)
        previous = {sig: signal.signal(sig, _wake_only) for sig in watched}
        previous_fd = signal.set_wakeup_fd(self.wake[1], warn_on_full_buffer=False)
        try:
            for _ in range(self.options.workers):
                self._spawn()
            while self._step():
                pass
        finally:
            signal.set_wakeup_fd(previous_fd)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for fd in (*self.wake, *self.channel):
                os.close(fd)
        return self.status

    def _step(self) -> bool:
        """One turn: wait for news, act on it; False once everything stopped."""
        now = time.monotonic()
        timeout = 1.0  # SIGCHLD and messages wake the parent sooner
        if self.stopping and not self.killed:
            timeout = max(0.0, min(timeout, self.deadline - now))
        elif self.restarts_due:
            timeout = max(0.0, min(timeout, min(self.restarts_due) - now))
        readable, _, _ = select.select([self.wake[0], self.channel[0]], [], [], timeout)
        if self.wake[0] in readable:
            self._on_signals(_drain(self.wake[0]))
        if self.channel[0] in readable:
            self._on_messages(_drain(self.channel[0]))
        self._reap()
        now = time.monotonic()
        if self.stopping:
            if not self.workers:
                return False
            if now >= self.deadline and not self.killed:
                waited = self.options.shutdown_timeout + KILL_GRACE
                _note(f"workers still running {waited:g} s after the stop; killing them")
                self._kill_all()
            return True
        due = [t for t in self.restarts_due if t <= now]
        if due:
            self.restarts_due = [t for t in self.restarts_due if t > now]
            for _ in due:
                self._spawn()
        ready = sum(w.ready for w in self.workers.values())
        if not self.announced and ready == self.options.workers:
            self.announced = True
            print(_banner(self.listeners, self.options.workers), flush=True)
        return True

    def _spawn(self) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                status = self._worker_main()
            except BaseException:
                traceback.print_exc()
            finally:
                with contextlib.suppress(Exception):
                    logging.shutdown()
                    sys.stdout.flush()
                    sys.stderr.flush()
                os._exit(status)
        self.workers[pid] = _Worker(started=time.monotonic())

    def _worker_main(self) -> int:
        """The body of a worker process, just after the fork."""
        parent = os.getppid()
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for fd in (*self.wake, self.channel[0]):
            os.close(fd)
        report = self.channel[1]
        sockets: list[socket.socket] = []
        for listener in self.listeners:
            if listener.shared:
                sockets.append(listener.sock)
            else:
                sockets.append(_own_socket(listener.sock, self.options.backlog))
                listener.sock.close()

        def tell(kind: str, text: str = "") -> None:
            # One write under PIPE_BUF bytes is atomic: lines never interleave.
            line = f"{kind} {os.getpid()} {text}".replace("\n", " ")[:3000] + "\n"
            os.write(report, line.encode("utf-8", "replace"))

        try:
            loaded = self.options.target.load()
            return _ServingProcess(
                self.options, loaded, sockets, lambda: tell("R"), (signal.SIGTERM,), parent
            ).run()
        except AppLoadError as exc:
            tell("E", str(exc))
            return EXIT_APP_ERROR

    def _on_signals(self, data: bytes) -> None:
        for signum in data:
            if signum not in (signal.SIGINT, signal.SIGTERM):
                continue  # SIGCHLD: _reap() looks after it
            action = _on_stop_signal(signum, self.stopping)
            if action is _Stop.BEGIN:
                self._stop(0)
            elif action is _Stop.IGNORE:
                _note(_ALREADY_STOPPING)
            elif not self.killed:
                _note("SIGINT while stopping: killing the workers")
                self.status = 1
                self._kill_all()

    def _on_messages(self, data: bytes) -> None:
        self.messages += data
        *lines, self.messages = self.messages.split(b"\n")
        for raw in lines:
            kind, _, rest = raw.decode("utf-8", "replace").partition(" ")
            pid_text, _, text = rest.partition(" ")
            worker = self.workers.get(int(pid_text)) if pid_text.isdigit() else None
            if kind == "R" and worker is not None:
                worker.ready = True
            elif kind == "E" and not self.stopping:  # once, from the first to tell
                _error(text)
                self._stop(EXIT_APP_ERROR)

    def _reap(self) -> None:
        while True:
            try:
                pid, wait_status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = self.workers.pop(pid, None)
            if worker is not None and not self.stopping:
                self._replace(pid, worker, os.waitstatus_to_exitcode(wait_status))

    def _replace(self, pid: int, worker: _Worker, code: int) -> None:
        now = time.monotonic()
        how = f"was killed by {_signal_name(-code)}" if code < 0 else f"exited with status {code}"
        if not worker.ready or now - worker.started < STARTUP_WINDOW:
            self.early_deaths += 1
            if self.early_deaths >= MAX_EARLY_DEATHS:
                _error(
                    f"workers keep dying within {STARTUP_WINDOW:g} s of starting "
                    f"({self.early_deaths} in a row; the last {how}); giving up"
                )
                self._stop(1)
                return
            delay = min(FIRST_BACKOFF * 2 ** (self.early_deaths - 1), MAX_BACKOFF)
        else:
            self.early_deaths = 0
            delay = 0.0
        after = f" in {delay:g} s" if delay else ""
        _note(f"worker {pid} {how}; starting another{after}")
        self.restarts_due.append(now + delay)

    def _stop(self, status: int) -> None:
        self.stopping = True
        self.status = status
        self.restarts_due.clear()
        self.deadline = time.monotonic() + self.options.shutdown_timeout + KILL_GRACE
        for pid in self.workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        # No more forks: the parent's copies of the sockets are no longer needed,
        # and once the workers close theirs new connections are refused.
        for listener in self.listeners:
            listener.sock.close()

    def _kill_all(self) -> None:
        self.killed = True
        self.status = self.status or 1
        for pid in self.workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _wake_only(signum: int, frame: object) -> None:
    """The Python-level handler: the wake-up fd carries the signal number."""


def _drain(fd: int) -> bytes:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
