"""The `Application`: a router, middlewares, lifecycle signals and typed state.

An application is built, then frozen when it starts serving: from then on its
routes, middlewares, signals and sub-applications cannot change (a clear
`RuntimeError` says so), and neither can its state once startup is over, so
every request sees the same application.

Serving one request (`_handle`, the HTTP layer's application callback): route,
run the handler wrapped in its middlewares, send the response. The middleware
chain of every route is composed once, at freeze time, not per request; a
404 or 405 goes through the middlewares too, so error-page middlewares see it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
    MutableMapping,
)
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from ..http.errors import HTTPError as BodyError
from .exceptions import HTTPException, HTTPInternalServerError, exception_for_status
from .request import Request
from .response import Response, StreamResponse
from .router import (
    AbstractRouteDef,
    MatchInfo,
    ResourceRoute,
    SubAppMatchError,
    SubAppResource,
    UrlDispatcher,
)

if TYPE_CHECKING:
    from ..http import Body, HTTPServer, Request as Message, ResponseWriter, ServerConfig

__all__ = ["AppKey", "Application", "CleanupContext", "Signal", "middleware"]

T = TypeVar("T")
Handler = Callable[[Request], Awaitable[StreamResponse]]
Middleware = Callable[[Request, Handler], Awaitable[StreamResponse]]

logger = logging.getLogger("treadle.web")
access_logger = logging.getLogger("treadle.access")


def middleware(func: Middleware) -> Middleware:
    """Mark `async def mw(request, handler)` as a middleware (the mark is
    optional in Treadle: every middleware has this form)."""
    func.__middleware_version__ = 1  # type: ignore[attr-defined]
    return func


class AppKey(Generic[T]):
    """A typed key for application state: `KEY = web.AppKey("db", Database)`,
    then `app[KEY] = db` and `app[KEY]` is typed as a `Database`."""

    __slots__ = ("_name", "_type")

    def __init__(self, name: str, t: type[T] | None = None) -> None:
        self._name = name
        self._type = t

    def __repr__(self) -> str:
        t = f"[{self._type.__name__}]" if self._type is not None else ""
        return f"<AppKey({self._name!r}){t}>"

    def __lt__(self, other: object) -> bool:
        return isinstance(other, AppKey) and self._name < other._name


class Signal(list[Callable[..., Awaitable[None]]]):
    """Callbacks run in order by `send(*args)`; frozen once the app starts."""

    def __init__(self, owner: Any) -> None:
        super().__init__()
        self._owner = owner
        self._frozen = False

    def freeze(self) -> None:
        self._frozen = True

    @property
    def frozen(self) -> bool:
        return self._frozen

    def _check(self) -> None:
        if self._frozen:
            raise RuntimeError(
                f"Cannot modify a signal of {self._owner!r}: the application has started"
            )

    def append(self, callback: Callable[..., Awaitable[None]]) -> None:
        self._check()
        super().append(callback)

    def extend(self, callbacks: Iterable[Callable[..., Awaitable[None]]]) -> None:
        self._check()
        super().extend(callbacks)

    def insert(self, index: Any, callback: Callable[..., Awaitable[None]]) -> None:
        self._check()
        super().insert(index, callback)

    def remove(self, callback: Callable[..., Awaitable[None]]) -> None:
        self._check()
        super().remove(callback)

    async def send(self, *args: Any) -> None:
        for callback in list(self):
            await callback(*args)

    def __hash__(self) -> int:  # type: ignore[override]
        return id(self)


class _FrozenList(list[Any]):
    def __init__(self, items: Iterable[Any], what: str) -> None:
        super().__init__(items)
        self._what = what
        self._frozen = False

    def _check(self) -> None:
        if self._frozen:
            raise RuntimeError(f"Cannot modify {self._what}: the application has started")

    def append(self, item: Any) -> None:
        self._check()
        super().append(item)

    def extend(self, items: Iterable[Any]) -> None:
        self._check()
        super().extend(items)

    def insert(self, index: Any, item: Any) -> None:
        self._check()
        super().insert(index, item)

    def __setitem__(self, index: Any, item: Any) -> None:
        self._check()
        super().__setitem__(index, item)

    def __hash__(self) -> int:  # type: ignore[override]
        return id(self)


class CleanupContext(_FrozenList):
    """Async generators `async def ctx(app): setup; yield; teardown`: the setup
    runs at startup, the teardown (in reverse order) at cleanup."""

    def __init__(self) -> None:
        super().__init__((), "cleanup_ctx")
        self._running: list[AsyncIterator[None]] = []

    async def _on_startup(self, app: Application) -> None:
        for factory in self:
            it = factory(app).__aiter__()
            await it.__anext__()
            self._running.append(it)

    async def _on_cleanup(self, app: Application) -> None:
        errors = []
        for it in reversed(self._running):
            try:
                await it.__anext__()
            except StopAsyncIteration:
                continue
            except Exception as exc:
                errors.append(exc)
            else:
                errors.append(RuntimeError(f"{it!r} has more than one 'yield'"))
        self._running.clear()
        if len(errors) == 1:
            raise errors[0]
        if errors:
            raise ExceptionGroup("errors while running the cleanup contexts", errors)


async def _raise_match_error(request: Request) -> StreamResponse:
    assert request._match_error is not None
    raise request._match_error


def _bind(mw: Middleware, inner: Handler) -> Handler:
    # A plain function returning the middleware's coroutine: no extra frame.
    return lambda request: mw(request, inner)


def _wrap(handler: Handler, middlewares: Iterable[Middleware]) -> Handler:
    for mw in reversed(list(middlewares)):
        handler = _bind(mw, handler)
    return handler


class Application(MutableMapping[Any, Any]):
    """A web application: `app.router`, `app.middlewares`, signals, state."""

    def __init__(
        self,
        *,
        logger: logging.Logger = logger,
        middlewares: Iterable[Middleware] = (),
        handler_args: dict[str, Any] | None = None,
        client_max_size: int = 1024**2,
        loop: Any = None,
        debug: Any = None,
    ) -> None:
        """`client_max_size` caps `request.read()` and friends (1 MiB; 413
        beyond). `loop` and `debug` are accepted for old code and ignored:
        the application runs on whatever loop serves it."""
        self._router = UrlDispatcher()
        self._middlewares: _FrozenList = _FrozenList(middlewares, "middlewares")
        self._state: dict[Any, Any] = {}
        self._handler_args = handler_args or {}
        self._client_max_size = client_max_size
        self.logger = logger
        self.on_startup: Signal = Signal(self)
        self.on_shutdown: Signal = Signal(self)
        self.on_cleanup: Signal = Signal(self)
        self.on_response_prepare: Signal = Signal(self)
        self.cleanup_ctx = CleanupContext()
        self.on_startup.append(self.cleanup_ctx._on_startup)
        self.on_cleanup.append(self.cleanup_ctx._on_cleanup)
        self._subapps: list[Application] = []
        self._parent: Application | None = None
        self._pre_frozen = False
        self._frozen = False
        self._error_chain: Handler = _raise_match_error
        # Whether this app or a sub-app has on_response_prepare callbacks: set
        # at freeze, so a response without any skips the hook per request.
        self._any_prepare_hooks = False

    def __repr__(self) -> str:
        return f"<Application 0x{id(self):x}>"

    def __bool__(self) -> bool:
        return True

    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)

    # -- state -----------------------------------------------------------------------------

    @overload
    def __getitem__(self, key: AppKey[T]) -> T: ...
    @overload
    def __getitem__(self, key: str) -> Any: ...
    def __getitem__(self, key: Any) -> Any:
        return self._state[key]

    def _check_state(self) -> None:
        if self._frozen:
            raise RuntimeError(
                "Cannot change the state of a running application: set it up before "
                "serving or in on_startup/cleanup_ctx, and keep mutable data in an "
                "object stored there"
            )

    @overload
    def __setitem__(self, key: AppKey[T], value: T) -> None: ...
    @overload
    def __setitem__(self, key: str, value: Any) -> None: ...
    def __setitem__(self, key: Any, value: Any) -> None:
        self._check_state()
        self._state[key] = value

    def __delitem__(self, key: Any) -> None:
        self._check_state()
        del self._state[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._state)

    def __len__(self) -> int:
        return len(self._state)

    # -- building --------------------------------------------------------------------------

    @property
    def router(self) -> UrlDispatcher:
        return self._router

    @property
    def middlewares(self) -> list[Middleware]:
        return self._middlewares

    @property
    def frozen(self) -> bool:
        return self._frozen

    def add_routes(self, routes: Iterable[AbstractRouteDef]) -> list[ResourceRoute]:
        return self._router.add_routes(routes)

    def add_subapp(self, prefix: str, subapp: Application) -> SubAppResource:
        """Serve `subapp` for every path under `prefix` (its middlewares run
        inside this application's)."""
        if self._pre_frozen:
            raise RuntimeError("Cannot add a sub-application: the application has started")
        if subapp is self:
            raise ValueError("an application cannot be its own sub-application")
        if subapp._parent is not None or subapp._pre_frozen:
            raise RuntimeError("Cannot add a sub-application twice or once it has started")
        if not prefix.startswith("/") or prefix == "/":
            raise ValueError(f"Prefix {prefix!r} must start with '/' and not be '/'")
        resource = SubAppResource(prefix, subapp)
        self._router.register_resource(resource)
        subapp._parent = self
        self._subapps.append(subapp)
        return resource

    def pre_freeze(self, outer: tuple[Middleware, ...] = ()) -> None:
        """Freeze routes, middlewares and signals and compose the middleware
        chain of every route (done by the runner before startup)."""
        if self._pre_frozen:
            return
        self._pre_frozen = True
        for mw in self._middlewares:
            if not callable(mw):
                raise TypeError(f"middleware {mw!r} is not callable")
        self._middlewares._frozen = True
        chain = (*outer, *self._middlewares)
        self._router.freeze()
        for signal in (
            self.on_startup,
            self.on_shutdown,
            self.on_cleanup,
            self.on_response_prepare,
        ):
            signal.freeze()
        self.cleanup_ctx._frozen = True
        for resource in self._router.resources():
            for route in resource:
                route._chain = _wrap(route.handler, chain)
        self._error_chain = _wrap(_raise_match_error, chain)
        for sub in self._subapps:
            sub.pre_freeze(chain)
        self._any_prepare_hooks = bool(self.on_response_prepare) or any(
            sub._any_prepare_hooks for sub in self._subapps
        )

    def freeze(self) -> None:
        """Freeze the state too (done after startup)."""
        self.pre_freeze()
        self._frozen = True
        for sub in self._subapps:
            sub.freeze()

    # -- lifecycle ---------------------------------------------------------------------------

    async def startup(self) -> None:
        """Run `on_startup` (and the setup half of `cleanup_ctx`), sub-apps too."""
        self.pre_freeze()
        await self.on_startup.send(self)
        for sub in self._subapps:
            await sub.startup()

    async def shutdown(self) -> None:
        """Run `on_shutdown` (sub-applications first)."""
        for sub in self._subapps:
            await sub.shutdown()
        await self.on_shutdown.send(self)

    async def cleanup(self) -> None:
        """Run `on_cleanup` (and the teardown half of `cleanup_ctx`)."""
        for sub in reversed(self._subapps):
            await sub.cleanup()
        await self.on_cleanup.send(self)

    # -- serving ------------------------------------------------------------------------------

    def make_handler(
        self,
        *,
        loop: Any = None,
        access_log: logging.Logger | None = None,
        config: ServerConfig | None = None,
        **kwargs: Any,
    ) -> HTTPServer:
        """A protocol factory for `loop.create_server(app.make_handler(), host,
        port)`, the seed's way. It serves at once: `on_startup` handlers cannot
        run here (nothing awaits them), so an application with any is refused;
        use `web.run_app` or `AppRunner` for those."""
        if len(self.on_startup) > 1 or len(self.cleanup_ctx):
            raise RuntimeError(
                "make_handler() cannot run on_startup or cleanup_ctx handlers; "
                "serve this application with web.run_app() or web.AppRunner"
            )
        self.freeze()
        from ..http import HTTPServer, ServerConfig

        return HTTPServer(self._handle_with_log(access_log), config or ServerConfig(**kwargs))

    def _handle_with_log(
        self, access_log: logging.Logger | None
    ) -> Callable[[Message, Body, ResponseWriter], Coroutine[Any, Any, None]]:
        if access_log is None:
            return self._handle
        from ..http.log import with_access_log

        return with_access_log(self._handle, access_log)

    async def _handle(self, message: Message, body: Body, writer: ResponseWriter) -> None:
        """Serve one request: route, run the middlewares and handler, respond."""
        request = Request(message, body, writer, self)
        try:
            try:
                match = self._router.resolve(message.method, message.path)
            except HTTPException as exc:
                request._match_error = exc
                handler = self._error_chain
            except SubAppMatchError as exc:
                request._match_error = exc.error
                request._app = exc.apps[-1]
                handler = exc.apps[-1]._error_chain
            else:
                if match._apps:
                    match._apps = (self, *match._apps)
                request._match_info = match
                handler = match.route._chain
            response = await handler(request)
            if not isinstance(response, StreamResponse):
                raise TypeError(
                    f"a request handler must return a response, got {response!r}; did a "
                    "handler or middleware forget its return statement?"
                )
        except HTTPException as exc:
            response = exc
        except asyncio.CancelledError:
            raise
        except BodyError as exc:
            # The HTTP layer refused the body while the handler read it (too
            # large, timed out, malformed chunks): answer its status, then close.
            response = exception_for_status(exc.status, f"{exc.status}: {exc.detail}")
            response.force_close()
        except Exception:
            if writer.started:
                # The head is out: no 500 can follow it. The HTTP layer logs the
                # error once and closes the connection mid-response.
                raise
            self.logger.exception("Error handling request %s %s", message.method, message.target)
            response = HTTPInternalServerError()
        try:
            if response._eof_sent:
                return
            if response._writer is not None:
                await response.write_eof()
            elif type(response) is Response and not self._any_prepare_hooks:
                # The common case, without the _send() coroutine in between.
                response._request = request
                status, pairs, data, reason = response._finish(writer)
                if writer.send_nowait(status, pairs, data, reason):
                    await writer.drain()
            elif type(response) is StreamResponse:
                await response.prepare(request)
                await response.write_eof()
            else:
                await response._send(request)  # type: ignore[attr-defined]
        finally:
            if request._post is not None:
                request._close_files()

    def _resolve_for_test(self, method: str, path: str) -> MatchInfo:
        return self._router.resolve(method, path)
