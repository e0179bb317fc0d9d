"""Serving an application from the command line: in one process, or pre-forked workers.

`treadle run module:app` ends in `serve()`. With one worker (the default) the
process serves by itself. With `--workers N` it becomes a *parent* that binds
the listening sockets, forks N worker processes, each running Treadle's event
loop, and looks after them; so does `--workers 1` with any option that
replaces workers (`--max-requests`, `--workers-max-rss`, `--reload`), since
someone must start the replacement.

- **The application is imported in each worker, after the fork**, never in the
  parent. Forking a process that has threads or an event loop is unsafe (a lock
  another thread held stays held in the child; the loop's poller and signal
  fds would be shared), and importing an application may start either: a
  database pool, a logging thread. So the parent stays small (standard library,
  no loop, no application) and import-time side effects run once per worker,
  as under gunicorn's and uvicorn's default. The price is memory that is not
  shared between workers, and an import error met N times: workers report it
  to the parent over a pipe, and the parent prints it once and exits 2. It is
  also what makes SIGHUP work: a new worker imports the code on disk now.
- **Sockets.** The parent binds first, so a bad or busy address fails once,
  before any fork, and port 0 becomes one real port that every worker shares.
  A TCP socket listens only once a process serving on it has its application
  loaded and started: a slow import never leaves a port that accepts
  connections and keeps them waiting (the kernel completes the handshake of
  every connection to a listening socket, whether anyone accepts or not). On
  Linux each worker *slot* has its own socket, bound to that address with
  `SO_REUSEPORT`, and the kernel spreads new connections evenly among them;
  the parent makes it, keeps it open, and hands it to every worker that takes
  the slot. Elsewhere (and always for Unix sockets, or with
  `reuse_port=False`) all the workers serve on one socket they inherit.
- **Replacing a worker** (`--max-requests`, `--workers-max-rss`, SIGHUP,
  `--reload`) loses no connection. The new worker is forked into the old
  one's slot and loads the application while the old one serves on. Once it
  reports that it is ready (after `on_startup` or the ASGI lifespan, with its
  sockets accepting), the old one is told to stop (`REPLACED_SIGNAL`,
  SIGUSR2): it stops accepting, gives the connections it has a moment
  (`SETTLE` seconds, while any is open) to send a request, answering each
  with `Connection: close`, then stops gracefully as below. (The graceful
  stop alone would close at once a connection it had just accepted, as idle,
  before its request was read.) The listening socket
  is the same throughout, so there is never a moment with nothing listening,
  and what was queued on it is accepted by the new worker. (A worker with a
  socket of its own, replaced by one with another, would lose what the
  kernel had queued on the old one: closing a listening socket resets its
  queue, and the kernel assigns new connections to it until it closes.) A
  new worker that cannot start (its import fails, it exits before it is
  ready) replaces no one: the old one serves on, and the parent says why.
  - `--max-requests N`: a worker asks to be replaced once N requests have
    reached its application, plus a random 0 to `--max-requests-jitter J`
    chosen per worker, so that workers started together are not replaced
    together. It serves on until its replacement is ready.
  - `--workers-max-rss MIB`: a worker whose resident memory (checked every
    second) grows past MIB mebibytes asks to be replaced.
  - SIGHUP to the parent replaces every worker, one at a time (the next once
    the last replacement is ready), each new one importing the
    application's code again: a deploy is `git pull && kill -HUP PID`. If
    the new code cannot be loaded, the parent logs why once, stops the roll
    and the old workers keep serving; the next SIGHUP tries again. A SIGHUP
    during a roll starts it over for the workers it has not reached, and for
    any new one that may have imported older code. The parent itself is not
    reloaded: a new Treadle, or new options, need a restart.
  - `--reload` (development): the parent looks at the modification times of
    the .py files under the app's folder (the one holding its top-level
    module or package, leaving out hidden folders, caches and virtual
    environments) every `RELOAD_INTERVAL` seconds, and replaces the worker
    on a change as SIGHUP does. One worker only.
  The parent counts the replacements by reason (`RESTART_REASONS`).
- **Crashes.** A worker that exits while the server is not stopping, and was
  not replaced, is replaced. Its slot's socket is closed and a new one made
  (what was queued on it is reset), so that while the replacement starts its
  share of new connections goes to the others. One that dies before it is
  ready, or within `STARTUP_WINDOW` seconds of starting, is replaced after a
  delay that doubles with each such death in a row; after
  `MAX_EARLY_DEATHS` of them the parent gives up (exit 1) instead of forking
  in a loop. A worker the parent replaced is never counted as one: a
  `--max-requests 1` worker is gone within a second, and not crashing.
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
  with SIGKILL, and exits 0 (1 if it had to kill). A SIGINT
  during the stop kills the workers at once (exit 1); a SIGTERM gets a note
  and is otherwise ignored. Workers ignore SIGINT, so the Ctrl+C a terminal
  sends to the whole process group reaches them once, through the parent;
  and SIGHUP, which is the parent's. A worker whose parent has gone stops by
  itself. The parent blocks its signals while it forks, so that one sent to
  a worker before the worker has its own handlers waits for them.

  | signal  | parent                          | worker                 | single process       |
  | ------- | ------------------------------- | ---------------------- | -------------------- |
  | SIGTERM | stop, passed on (again: a note) | stop (again: nothing)  | stop (again: a note) |
  | SIGINT  | stop (again: kill the workers)  | ignored                | stop (again: exit 1) |
  | SIGHUP  | replace the workers, new code   | ignored                | the default: it ends |
  | SIGUSR2 | the default                     | replaced: settle, stop | the default          |

  ("stop": the graceful stop above; SIGUSR2 is the parent's word to a worker.)

In a single process the same rule holds: the first SIGINT or SIGTERM stops
gracefully in the same way, a SIGINT during the stop abandons it (exit 1),
and a SIGTERM gets a note and is otherwise ignored. Nothing can replace a
single process, hence no SIGHUP: with `--workers 1 --max-requests ...` (or
any option that replaces workers) there is a parent, and SIGHUP works.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import importlib
import importlib.util
import inspect
import logging
import math
import os
import random
import resource
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
    from .http.server import ResponseWriter

__all__ = [
    "EXIT_APP_ERROR",
    "INTERFACES",
    "KILL_GRACE",
    "MAX_EARLY_DEATHS",
    "RESTART_REASONS",
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
"""Seconds between a worker's looks at its parent (and at its memory, with a limit)."""
FIRST_RETRY = 1.0
MAX_RETRY = 60.0
"""A replacement that could not start is tried again after a delay that doubles up to this."""
SETTLE = 1.0
"""Seconds a replaced worker, no longer accepting, lets open connections send a request."""
REPLACED_SIGNAL = signal.SIGUSR2
"""How the parent tells a worker that its replacement is ready: stop, after `_settle`."""
RELOAD_INTERVAL = 0.5
"""Seconds between two looks at the app's files under --reload."""
RESTART_REASONS = ("crash", "max_requests", "max_rss", "reload")
"""Why workers are replaced; the parent counts each (reload: SIGHUP or --reload)."""


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
    max_requests: int | None = None
    """A worker that served this many requests (plus up to `max_requests_jitter`)
    is replaced."""
    max_requests_jitter: int = 0
    workers_max_rss: int | None = None
    """MiB: a worker whose resident memory grows past it is replaced."""
    reload: bool = False
    """Development: restart the worker when a .py file under the app's folder changes."""

    @property
    def supervised(self) -> bool:
        """Whether a parent process runs the workers (one may be enough)."""
        return (
            self.workers > 1
            or self.reload
            or self.max_requests is not None
            or self.workers_max_rss is not None
        )


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
        return serve(ServeOptions(target=target, host=host, port=port, workers=workers, **options))
    target = AppTarget(f"{type(app).__module__}:app", factory, interface, obj=app)
    settings = ServeOptions(target=target, host=host, port=port, workers=workers, **options)
    if settings.supervised:
        raise ValueError(
            "run_server(workers > 1, max_requests, workers_max_rss or reload) needs the app "
            "as an import string 'module:attribute': each worker imports it after the fork"
        )
    return serve(settings)


def serve(options: ServeOptions) -> int:
    """Serve until SIGINT or SIGTERM, then stop gracefully; return the exit
    status (0 after a graceful stop, 2 when the app cannot be loaded or the
    options do not go together, 1 for other failures)."""
    if options.reload and options.workers > 1:
        _error(
            f"--reload is for development and restarts one worker; it cannot be used with "
            f"--workers {options.workers}"
        )
        return EXIT_APP_ERROR
    if options.max_requests_jitter and options.max_requests is None:
        _error("--max-requests-jitter needs --max-requests")
        return EXIT_APP_ERROR
    if not options.supervised:
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
    """Bind every address of the options. TCP sockets are bound only: they
    listen once a process serving on them has its app ready (with
    `reuse_port` they only hold the port; workers serve on their own). A Unix
    socket listens at once, so that another server finds the path in use."""
    listeners: list[_Listener] = []
    try:
        if options.tcp:
            listeners += _bind_tcp(options.host, options.port, reuse_port)
        if options.unix is not None:
            listeners.append(_bind_unix(options.unix, options.backlog))
    except BaseException:
        for listener in listeners:
            listener.close()
        raise
    return listeners


def _bind_tcp(host: str, port: int, reuse_port: bool) -> list[_Listener]:
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


def _slot_socket(parent: socket.socket) -> socket.socket:
    """A worker slot's socket on the parent's address, with SO_REUSEPORT:
    bound, and listening once its first worker has its app ready."""
    sock = socket.socket(parent.family, socket.SOCK_STREAM)
    try:
        _prepare_tcp(sock, reuse_port=True)
        sock.bind(parent.getsockname())
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
    max_requests: int | None = None
    """Ask to be replaced (`retire`) once this many requests reached the app."""
    max_rss: int | None = None
    """Bytes: ask to be replaced once the resident memory grows past it."""
    retire: Callable[[str], None] = lambda reason: None
    """Tells the parent this worker is due for replacement, and why."""
    replaced_signal: int | None = None
    """The parent's word that this worker's replacement is ready (workers only)."""

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
        gate = _Gate(self.max_requests, self.retire)

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

        def on_replaced() -> None:
            if not stopping.is_set():
                gate.replaced = True
                stopping.set()

        signals = list(self.stop_signals)
        for sig in signals:
            loop.add_signal_handler(sig, on_signal, sig)
        if self.replaced_signal is not None:
            signals.append(self.replaced_signal)
            loop.add_signal_handler(self.replaced_signal, on_replaced)
        try:
            options = self.options
            interface, app = await options.target.application(self.loaded)
            # Only a worker can be replaced; the single process adds nothing.
            hook = gate if self.replaced_signal is not None else None
            runner = _make_runner(interface, app, options, hook)
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
                    if gate.replaced:
                        await _settle(runner)
            finally:
                await runner.cleanup()
        finally:
            # Removing the loop's handler restores the default action, which
            # for SIGTERM ends the process: a late one (the parent passing on
            # a signal the worker had already) would cut short the loop's
            # close that follows. So SIGTERM is ignored from here on, set
            # while it is blocked so that none arrives in between.
            ignored = [sig for sig in signals if sig != signal.SIGINT]
            blocked = signal.pthread_sigmask(signal.SIG_BLOCK, ignored)
            try:
                for sig in signals:
                    loop.remove_signal_handler(sig)
                for sig in ignored:
                    signal.signal(sig, signal.SIG_IGN)
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)

    async def _until_stopped(self, stopping: asyncio.Event) -> None:
        if self.parent_pid is None:
            await stopping.wait()
            return
        max_rss = self.max_rss
        while True:
            try:
                await asyncio.wait_for(stopping.wait(), PARENT_CHECK_INTERVAL)
                return
            except TimeoutError:
                if os.getppid() != self.parent_pid:
                    _note(f"worker {os.getpid()}: the parent process is gone; stopping")
                    return
                if max_rss is not None:
                    rss = _resident_bytes()
                    if rss > max_rss:
                        max_rss = None  # asked once; the parent replaces it when it can
                        self.retire(f"max_rss {rss >> 20}")


async def _settle(runner: ServerRunner) -> None:
    """A replaced worker stops accepting (its socket lives on with its
    successor), and gives the connections it has a moment (up to `SETTLE`
    seconds, while any is open) to send a request before the graceful stop.

    The HTTP server's graceful stop closes a connection with no request in
    flight at once, as idle, and that includes one accepted a moment ago whose
    request has not been read yet: its client would get no answer. Under load
    some connection is always in that state. Meanwhile `_Gate` says
    `Connection: close` on every response that has not started, so keep-alive
    clients move to the new worker instead of racing the close."""
    runner.stop_accepting()
    server = runner.server
    end = time.monotonic() + SETTLE
    while server is not None and server.connections and time.monotonic() < end:
        await asyncio.sleep(0.02)


class _Gate:
    """A worker's request hook: counts the requests that reach the app (and
    asks for the worker's replacement at the `limit`th), and once the worker
    is replaced, closes each connection after its response."""

    __slots__ = ("limit", "replaced", "retire", "served")

    def __init__(self, limit: int | None, retire: Callable[[str], None]) -> None:
        self.limit = limit or 0
        self.retire = retire
        self.served = 0
        self.replaced = False

    def __call__(self, writer: ResponseWriter) -> None:
        if self.replaced:
            writer.force_close()
        self.served += 1
        if self.served == self.limit:
            # The worker serves on until its replacement is ready.
            self.retire("max_requests")


def _resident_bytes() -> int:
    """This process's resident memory now (on Linux), or its peak elsewhere."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024  # bytes there, KiB here


def _make_runner(
    interface: str,
    app: Any,
    options: ServeOptions,
    request_hook: Callable[[ResponseWriter], None] | None = None,
) -> ServerRunner:
    """The runner of `app` for its interface, with the options that apply."""
    settings: dict[str, Any] = {
        "access_log": logging.getLogger("treadle.access") if options.access_log else None,
        "shutdown_timeout": options.shutdown_timeout,
        "handler_cancellation": options.handler_cancellation,
        "request_hook": request_hook,
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
    except OSError as exc:  # the workers' own sockets, made before the first fork
        _error(f"cannot listen: {exc}")
        return 1
    finally:
        for listener in listeners:
            listener.close()


@dataclass
class _Slot:
    """A place for one worker, which its replacements take over: the sockets
    it serves on. Shared listeners appear as they are; an SO_REUSEPORT
    listener has a socket of the slot's own (`owned`), which the parent keeps
    open so that it outlives the workers that serve on it."""

    sockets: list[socket.socket]
    owned: list[socket.socket]

    def close(self) -> None:
        for sock in self.owned:
            sock.close()


@dataclass
class _Worker:
    pid: int
    slot: int
    started: float
    generation: int
    """The parent's generation when it was forked: SIGHUP and --reload add one."""
    limit: int | None = None
    """The requests it serves before it is replaced (--max-requests plus jitter)."""
    ready: bool = False
    reason: str | None = None
    """Why it is to be replaced (one of RESTART_REASONS but "crash"), once it is."""
    asked: str | None = None
    """Why the worker asked to be replaced ("max_requests", "max_rss"), if it did."""
    detail: str = ""
    successor: int | None = None
    """The pid of the worker starting in its place."""
    predecessor: int | None = None
    """The pid of the worker it is to replace, until it is ready."""
    retry_at: float = 0.0
    """After a replacement that could not start: when to try again."""
    failed: bool = False
    """A replacement that could not start, and said so."""
    retiring: bool = False
    """Told to stop because another took its place: its exit is no crash."""
    deadline: float = math.inf
    """When a retiring worker still running is killed."""


@dataclass
class _Supervisor:
    """The parent: forks the workers, replaces them (after a crash, or in
    turn when asked to), stops them."""

    options: ServeOptions
    listeners: list[_Listener]
    slots: list[_Slot] = field(default_factory=list)
    workers: dict[int, _Worker] = field(default_factory=dict)
    restarts_due: list[tuple[float, int]] = field(default_factory=list)
    """(when, slot): crashed workers to replace."""
    early_deaths: int = 0
    failed_replacements: int = 0
    """Replacements in a row that could not start (--max-requests, --workers-max-rss)."""
    restarts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RESTART_REASONS, 0))
    """Workers replaced, by reason (for a metrics endpoint to export)."""
    generation: int = 0
    rolled: int = -1
    """The newest generation every worker was brought to (or given up on)."""
    roll_source: str = ""
    watcher: _Watcher | None = None
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
        try:
            for _ in range(self.options.workers):
                self.slots.append(self._new_slot())
        except BaseException:
            for slot in self.slots:
                slot.close()
            raise
        self.rolled = self.generation
        if self.options.reload:
            self.watcher = _Watcher.of(self.options.target)
            if self.watcher is not None:
                _note(f"reload: watching the .py files under {self.watcher.root}")
        self.wake = os.pipe()
        self.channel = os.pipe()
        for fd in (*self.wake, self.channel[0]):
            os.set_blocking(fd, False)
        previous = {sig: signal.signal(sig, _wake_only) for sig in _PARENT_SIGNALS}
        previous_fd = signal.set_wakeup_fd(self.wake[1], warn_on_full_buffer=False)
        try:
            for index in range(len(self.slots)):
                self._spawn(index)
            while self._step():
                pass
        finally:
            signal.set_wakeup_fd(previous_fd)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for fd in (*self.wake, *self.channel):
                os.close(fd)
            for slot in self.slots:
                slot.close()
        return self.status

    def _new_slot(self) -> _Slot:
        sockets: list[socket.socket] = []
        owned: list[socket.socket] = []
        try:
            for listener in self.listeners:
                if listener.shared:
                    sockets.append(listener.sock)
                else:
                    sock = _slot_socket(listener.sock)
                    owned.append(sock)
                    sockets.append(sock)
        except BaseException:
            for sock in owned:
                sock.close()
            raise
        return _Slot(sockets, owned)

    def _step(self) -> bool:
        """One turn: wait for news, act on it; False once everything stopped."""
        now = time.monotonic()
        if self.stopping and not self.killed:
            wake_at = self.deadline
        else:
            wake_at = now + 1.0  # SIGCHLD and messages wake the parent sooner
            wake_at = min([wake_at, *(when for when, _ in self.restarts_due)])
            wake_at = min([wake_at, *(w.deadline for w in self.workers.values())])
            wake_at = min([wake_at, *(w.retry_at for w in self._wanting_replacement())])
            if self.watcher is not None:
                wake_at = min(wake_at, self.watcher.next_look)
        timeout = max(0.0, min(1.0, wake_at - now))
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
        due = [slot for when, slot in self.restarts_due if when <= now]
        if due:
            self.restarts_due = [(when, slot) for when, slot in self.restarts_due if when > now]
            for slot in due:
                self._spawn(slot)
        for worker in list(self.workers.values()):
            if worker.retiring and now >= worker.deadline:
                worker.deadline = math.inf
                waited = self.options.shutdown_timeout + KILL_GRACE
                _note(
                    f"worker {worker.pid} still running {waited:g} s after it was replaced; "
                    "killing it"
                )
                _kill(worker.pid, signal.SIGKILL)
        if self.watcher is not None and now >= self.watcher.next_look:
            changed = self.watcher.look(now)
            if changed:
                more = f" and {len(changed) - 1} more" if len(changed) > 1 else ""
                self._roll("reload", f"{changed[0]}{more} changed; restarting the worker")
        for worker in self._wanting_replacement():
            if worker.retry_at <= now:
                self._spawn(worker.slot, worker)
        self._roll_on()
        ready = sum(w.ready and not w.retiring for w in self.workers.values())
        if not self.announced and ready >= self.options.workers:
            self.announced = True
            print(_banner(self.listeners, self.options.workers), flush=True)
        return True

    def _wanting_replacement(self) -> list[_Worker]:
        """Workers that asked to be replaced, with no replacement starting."""
        return [
            w
            for w in self.workers.values()
            if w.reason is not None and w.successor is None and not w.retiring
        ]

    def _roll(self, source: str, why: str) -> None:
        """Replace every worker in turn, loading the application's code again."""
        self.generation += 1
        self.roll_source = source
        _note(f"{source}: {why}")

    def _roll_on(self) -> None:
        """Start the next step of a roll: one worker replaced at a time."""
        if self.rolled >= self.generation:
            return
        workers = sorted(self.workers.values(), key=lambda w: w.started)
        if any(w.reason == "reload" and w.successor is not None for w in workers):
            return  # one at a time
        stale = [
            w
            for w in workers
            if w.generation < self.generation and w.reason is None and not (w.retiring or w.failed)
        ]
        for worker in stale:
            if worker.ready:
                worker.reason = "reload"
                self._spawn(worker.slot, worker)
                return
        if not stale:  # else: one still starting, rolled once it is ready
            self.rolled = self.generation
            serve = "the worker serves" if len(self.slots) == 1 else "the workers serve"
            _note(f"{self.roll_source}: done; {serve} the code loaded again")

    def _spawn(self, slot: int, predecessor: _Worker | None = None) -> None:
        """Fork a worker for `slot`; with `predecessor`, one to take its place."""
        options = self.options
        limit = None
        if options.max_requests is not None:
            limit = options.max_requests + random.randint(0, options.max_requests_jitter)
        sys.stdout.flush()
        sys.stderr.flush()
        # Until the child has its own handlers, a signal sent to it would run
        # the parent's (and reach the parent's wake-up fd): a SIGTERM from a
        # stop begun just now would be lost, and the child would serve on.
        # Blocked across the fork, it waits for the child's own.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _PARENT_SIGNALS)
        try:
            pid = os.fork()
        except BaseException:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            raise
        if pid != 0:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        else:
            status = 1
            try:
                status = self._worker_main(self.slots[slot], limit, mask)
            except BaseException:
                traceback.print_exc()
            finally:
                with contextlib.suppress(Exception):
                    logging.shutdown()
                    sys.stdout.flush()
                    sys.stderr.flush()
                os._exit(status)
        worker = _Worker(pid, slot, time.monotonic(), self.generation, limit)
        if predecessor is not None:
            worker.predecessor = predecessor.pid
            predecessor.successor = pid
        self.workers[pid] = worker

    def _worker_main(self, slot: _Slot, max_requests: int | None, mask: set[int]) -> int:
        """The body of a worker process, just after the fork (with the
        parent's signals blocked; `mask` is the mask to restore)."""
        parent = os.getppid()
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        # SIGHUP is the parent's to act on. A handler that does nothing rather
        # than SIG_IGN, which programs the app starts would inherit.
        signal.signal(signal.SIGHUP, _wake_only)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        for fd in (*self.wake, self.channel[0]):
            os.close(fd)
        # Only this slot's sockets stay open here: a copy of another slot's
        # would keep that socket listening, with no one accepting, after the
        # parent replaced it.
        for other in self.slots:
            if other is not slot:
                other.close()
        for listener in self.listeners:
            if not listener.shared:
                listener.sock.close()
        report = self.channel[1]
        ready = False

        def tell(kind: str, text: str = "") -> None:
            # One write under PIPE_BUF bytes is atomic: lines never interleave.
            line = f"{kind} {os.getpid()} {text}".replace("\n", " ")[:3000] + "\n"
            os.write(report, line.encode("utf-8", "replace"))

        def announce() -> None:
            nonlocal ready
            ready = True
            tell("R")

        options = self.options
        try:
            # The parent never imports the app, but a FileFinder it made for
            # the current directory (importing treadle) may remember an older
            # listing of it: a module a deploy added would not be found.
            importlib.invalidate_caches()
            loaded = options.target.load()
            return _ServingProcess(
                options,
                loaded,
                slot.sockets,
                announce,
                (signal.SIGTERM,),
                parent,
                max_requests=max_requests,
                max_rss=None if options.workers_max_rss is None else options.workers_max_rss << 20,
                retire=lambda reason: tell("T", reason),
                replaced_signal=REPLACED_SIGNAL,
            ).run()
        except AppLoadError as exc:
            tell("E", str(exc))
            return EXIT_APP_ERROR
        except Exception as exc:
            if not ready:  # the parent says why a replacement did not start
                tell("F", "".join(traceback.format_exception_only(exc)).strip())
            raise

    def _on_signals(self, data: bytes) -> None:
        for signum in data:
            if signum == signal.SIGHUP:
                if not self.stopping:
                    self._roll(
                        "SIGHUP",
                        "restarting the workers one at a time, "
                        "loading the application's code again",
                    )
                continue
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
            if self.stopping:
                continue
            if kind == "R" and worker is not None:
                worker.ready = True
                if worker.predecessor is not None:
                    self._took_over(worker)
            elif kind == "T" and worker is not None:
                worker.asked, _, worker.detail = text.partition(" ")
                worker.reason = worker.reason or worker.asked
            elif kind in ("E", "F") and worker is not None and worker.predecessor is not None:
                self._replacement_failed(worker, text)
            elif kind == "E" and not self.announced:  # once, from the first to tell
                _error(text)
                self._stop(EXIT_APP_ERROR)
            elif kind == "E":
                _error(f"worker {pid_text}: {text}")

    def _took_over(self, new: _Worker) -> None:
        """`new` is ready: the worker it replaces stops (gracefully)."""
        old = self.workers.get(new.predecessor or 0)
        new.predecessor = None
        if old is None or old.successor != new.pid:
            return
        old.successor = None
        reason = old.reason or "reload"
        self.restarts[reason] += 1
        self.failed_replacements = 0
        old.retiring = True
        old.deadline = time.monotonic() + SETTLE + self.options.shutdown_timeout + KILL_GRACE
        _kill(old.pid, REPLACED_SIGNAL)
        if reason == "max_requests":
            plural = "" if old.limit == 1 else "s"
            why = f"served its {old.limit} request{plural} (--max-requests)"
        elif reason == "max_rss":
            why = f"uses {old.detail} MiB, over --workers-max-rss {self.options.workers_max_rss}"
        else:
            why = f"runs the old code ({self.roll_source})"
        _note(f"worker {old.pid} {why}: worker {new.pid} took its place")

    def _replacement_failed(self, new: _Worker, why: str) -> None:
        """`new` could not start in another's place, which then serves on."""
        if new.failed:
            return
        new.failed = True
        old = self.workers.get(new.predecessor or 0)
        if old is None or old.successor != new.pid:
            return
        old.successor = None
        if old.reason == "reload":
            old.reason = old.asked  # what it asked for meanwhile still holds
            self.rolled = max(self.rolled, new.generation)
            _error(
                f"{self.roll_source}: the new code cannot be loaded ({why}); "
                "the workers keep serving the code they have"
            )
            return
        self.failed_replacements += 1
        delay = min(FIRST_RETRY * 2 ** (self.failed_replacements - 1), MAX_RETRY)
        old.retry_at = time.monotonic() + delay
        _error(
            f"a worker to replace worker {old.pid} could not start ({why}); "
            f"it serves on until another try in {delay:g} s"
        )

    def _reap(self) -> None:
        while True:
            try:
                pid, wait_status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = self.workers.pop(pid, None)
            if worker is None or self.stopping:
                continue
            code = os.waitstatus_to_exitcode(wait_status)
            how = (
                f"was killed by {_signal_name(-code)}" if code < 0 else f"exited with status {code}"
            )
            if worker.retiring:
                if code != 0:
                    _note(f"worker {pid}, replaced, {how}")
            elif worker.predecessor is not None:
                self._replacement_failed(worker, f"it {how} before it was ready")
            elif worker.successor is not None:
                self.restarts["crash"] += 1
                successor = self.workers.get(worker.successor)
                if successor is not None:
                    successor.predecessor = None  # just a new worker now
                _note(f"worker {pid} {how}; worker {worker.successor} is starting in its place")
            else:
                self._replace(worker, how)

    def _replace(self, worker: _Worker, how: str) -> None:
        """A worker crashed: another takes its slot, at once or after a delay."""
        now = time.monotonic()
        pid = worker.pid
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
        self.restarts["crash"] += 1
        # Its socket is closed and a new one made (what was queued on it is
        # reset, as with any crash): kept open while no worker accepts from
        # it, its share of new connections would wait for the replacement.
        slot = self.slots[worker.slot]
        try:
            renewed = self._new_slot()
        except OSError as exc:
            _error(
                f"cannot make a new socket for worker {pid}'s replacement ({exc}); it "
                "serves on the old one"
            )
        else:
            slot.close()
            self.slots[worker.slot] = renewed
        after = f" in {delay:g} s" if delay else ""
        _note(f"worker {pid} {how}; starting another{after}")
        self.restarts_due.append((now + delay, worker.slot))

    def _stop(self, status: int) -> None:
        self.stopping = True
        self.status = status
        self.restarts_due.clear()
        self.deadline = time.monotonic() + self.options.shutdown_timeout + KILL_GRACE
        for pid in self.workers:
            _kill(pid, signal.SIGTERM)
        # No more forks: the parent's copies of the sockets are no longer needed,
        # and once the workers close theirs new connections are refused.
        for listener in self.listeners:
            listener.sock.close()
        for slot in self.slots:
            slot.close()

    def _kill_all(self) -> None:
        self.killed = True
        self.status = self.status or 1
        for pid in self.workers:
            _kill(pid, signal.SIGKILL)


_PARENT_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP)
"""What the parent acts on (through its wake-up fd)."""


def _kill(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


# -- --reload -----------------------------------------------------------------------------------

#: Folders under the app's that are never looked into.
_UNWATCHED = frozenset({"__pycache__", "node_modules", "site-packages"})


@dataclass
class _Watcher:
    """Notices a change to the .py files under the app's folder (by polling
    their modification times and sizes: no dependency, no OS-specific API)."""

    root: str
    files: dict[str, tuple[int, int]]
    next_look: float

    @classmethod
    def of(cls, target: AppTarget) -> _Watcher | None:
        """A watcher of the folder holding the app's top-level module or
        package, found without importing it (the parent never does); None
        when it cannot be found (the worker then says why)."""
        top = target.spec.partition(":")[0].partition(".")[0]
        cwd = os.getcwd()
        if cwd not in sys.path and "" not in sys.path:
            sys.path.insert(0, cwd)
        try:
            spec = importlib.util.find_spec(top)
        except (ImportError, ValueError):
            return None
        if spec is None:
            return None
        if spec.submodule_search_locations:
            root = next(iter(spec.submodule_search_locations))
        elif spec.origin and os.path.isfile(spec.origin):
            root = os.path.dirname(spec.origin)
        else:
            return None
        root = os.path.abspath(root)
        return cls(root, _python_files(root), time.monotonic() + RELOAD_INTERVAL)

    def look(self, now: float) -> list[str]:
        """The files changed, added or removed since the last look."""
        self.next_look = now + RELOAD_INTERVAL
        files = _python_files(self.root)
        changed = sorted(
            os.path.relpath(path, self.root)
            for path in files.keys() | self.files.keys()
            if files.get(path) != self.files.get(path)
        )
        self.files = files
        return changed


def _python_files(root: str) -> dict[str, tuple[int, int]]:
    """path -> (mtime_ns, size) of every .py file under `root`, leaving out
    hidden folders, caches and virtual environments."""
    found: dict[str, tuple[int, int]] = {}
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = [
            name
            for name in subfolders
            if not name.startswith(".")
            and name not in _UNWATCHED
            and not os.path.exists(os.path.join(folder, name, "pyvenv.cfg"))
        ]
        for name in names:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with contextlib.suppress(OSError):  # removed meanwhile
                    st = os.stat(path)
                    found[path] = (st.st_mtime_ns, st.st_size)
    return found


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
