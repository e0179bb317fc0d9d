"""Serving WSGI applications (Flask, Django...) on Treadle's server (PEP 3333).

    treadle run myapp:app --interface wsgi --wsgi-threads 16

A WSGI app is synchronous: it runs in a thread pool, never on the event loop,
so a slow request does not hold up the loop or the other requests. The
adapter is the HTTP layer's application callable (`WSGIHandler`), so the
server's strictness, limits, timeouts and graceful stop hold unchanged.

- **The thread does the app's work; the loop does the IO.** `wsgi.input`
  reads the request body from the loop (`Body`, which pauses reading from
  the socket while the app is behind: back-pressure), and body chunks are
  written from the loop, each waiting for the transport to drain. A
  response that is a list or tuple of bytes (Flask's, Django's) is joined
  in the thread and goes out in one write with its `Content-Length`.
- **A full pool queues, boundedly.** Past `threads` requests running and
  `queue` more waiting for a thread, a request is answered 503 with
  `Retry-After` at once rather than queued without bound.
- **environ per PEP 3333**: `PATH_INFO` is the percent-decoded path as
  latin-1 (bytes as characters), `SCRIPT_NAME` the root path; header fields
  become `HTTP_*` (repeated ones joined with ", "). A field whose name holds
  an underscore is dropped (stricter than gunicorn's default of passing it):
  `X_Forwarded_For` and `X-Forwarded-For` both become
  `HTTP_X_FORWARDED_FOR`, and a client could otherwise spoof one with the
  other past a proxy that sets it. `wsgi.input_terminated` is true:
  `wsgi.input` ends at the body's end, chunked or not.
- `start_response` follows the PEP: headers are sent at the first non-empty
  chunk (or at the end); `exc_info` replaces them until then and re-raises
  after; the iterable's `close()` is always called. `wsgi.file_wrapper`
  over a real file goes out with `sendfile`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import io
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any, BinaryIO, Final
from urllib.parse import unquote_to_bytes

from .http.body import EMPTY_BODY, Body
from .http.errors import HTTPError
from .http.parser import Request
from .http.runner import NO_BODY_LIMIT, ServerRunner
from .http.server import App, ResponseWriter, ServerConfig
from .http.writer import take_framing

__all__ = [
    "FileWrapper",
    "RequestBodyRefused",
    "WSGIApp",
    "WSGIHandler",
    "WSGIRunner",
    "default_threads",
]

logger = logging.getLogger("treadle.wsgi")

StartResponse = Callable[..., Callable[[bytes], None]]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

_READ_PIECE: Final = 64 * 1024
_BUFFER_MAX: Final = 1024 * 1024  # a response with a Content-Length up to this goes out whole


def default_threads() -> int:
    """The default size of the pool: `ThreadPoolExecutor`'s, min(32, CPUs + 4)."""
    return min(32, (os.cpu_count() or 1) + 4)


class FileWrapper:
    """`wsgi.file_wrapper`: iterates a file in blocks (its own iterator, as
    `wsgiref.util.FileWrapper`, so a wrapper around it that closes the
    iterator closes the file); `seekable`/`seek`/`tell` are the file's. When
    it reaches the server as the response, a real file goes out with
    `sendfile` instead, from the file's position, never past the app's
    Content-Length."""

    def __init__(self, filelike: BinaryIO, blksize: int = 8192) -> None:
        self.filelike = filelike
        self.blksize = blksize
        for name in ("seekable", "seek", "tell"):
            if hasattr(filelike, name):
                setattr(self, name, getattr(filelike, name))

    def close(self) -> None:
        """Close the file (PEP 3333: the server calls it once the response is out)."""
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()

    def __iter__(self) -> FileWrapper:
        return self

    def __next__(self) -> bytes:
        block = self.filelike.read(self.blksize)
        if block:
            return block
        raise StopIteration


class _Input(io.RawIOBase):
    """`wsgi.input`: the request body, read from the app's thread through the
    loop (each read waits for the bytes to arrive; reading from the socket
    pauses while the app is behind)."""

    def __init__(
        self,
        body: Body,
        loop: asyncio.AbstractEventLoop,
        limit: int | None,
        refuse: Callable[[HTTPError], None],
    ) -> None:
        self._body = body
        self._loop = loop
        self._limit = limit
        self._refuse = refuse
        self._seen = 0
        self._buf = b""

    def readable(self) -> bool:
        return True

    def _fetch(self, n: int) -> bytes:
        body = self._body
        if body is EMPTY_BODY:
            return b""
        future = asyncio.run_coroutine_threadsafe(body.read(n), self._loop)
        try:
            data = future.result()
            self._seen += len(data)
            if self._limit is not None and self._seen > self._limit:
                raise HTTPError(413, f"the body passed the limit of {self._limit} bytes")
        except HTTPError as exc:
            # The body broke a rule or a limit (bad chunking, a timeout, 413):
            # the server answers with its status; the app gets an OSError, as
            # for a client that went away (raised through it, an HTTPError
            # would become the framework's 500), and its answer is dropped.
            self._refuse(exc)
            raise RequestBodyRefused(str(exc)) from None
        return data

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            parts = [self._buf]
            self._buf = b""
            while piece := self._fetch(_READ_PIECE):
                parts.append(piece)
            return b"".join(parts)
        if self._buf:
            data, self._buf = self._buf[:size], self._buf[size:]
            return data
        return self._fetch(size) if size else b""

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readline(self, size: int | None = -1) -> bytes:
        limit = -1 if size is None else size
        while b"\n" not in self._buf and (limit < 0 or len(self._buf) < limit):
            piece = self._fetch(_READ_PIECE)
            if not piece:
                break
            self._buf += piece
        end = self._buf.find(b"\n") + 1 or len(self._buf)
        if limit >= 0:
            end = min(end, limit)
        line, self._buf = self._buf[:end], self._buf[end:]
        return line

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines = []
        total = 0
        while line := self.readline():
            lines.append(line)
            total += len(line)
            if 0 <= hint <= total:
                break
        return lines

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line


class RequestBodyRefused(OSError):
    """Raised by `wsgi.input` when the request body broke a rule or a limit:
    the server has answered already (413, 400 or 408) and will close."""


class _Errors:
    """`wsgi.errors`: text the app writes goes to the `treadle.wsgi` logger."""

    def write(self, text: str) -> int:
        text = text.rstrip("\n")
        if text:
            logger.error("%s", text)
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        pass


class WSGIHandler:
    """The HTTP layer's application callable for a WSGI app: each request runs
    in the pool (see the module docstring).

    - `root_path`: `SCRIPT_NAME`.
    - `threads`: the pool's size; `queue`: requests that may wait for a
      thread before the rest get 503.
    - `limit_request_body`: the largest request body passed on (None: none).
    - `multiprocess`: `wsgi.multiprocess` (the server runs several workers).
    """

    def __init__(
        self,
        app: WSGIApp,
        *,
        root_path: str = "",
        threads: int | None = None,
        queue: int | None = None,
        limit_request_body: int | None = None,
        multiprocess: bool = False,
    ) -> None:
        self._app = app
        self._root = root_path.rstrip("/")
        self._threads = threads or default_threads()
        # As gunicorn's gthread worker takes up to worker_connections (1000).
        self._queue = queue if queue is not None else 1000
        self._limit = limit_request_body
        self._multiprocess = multiprocess
        self._busy = 0
        self._pool = concurrent.futures.ThreadPoolExecutor(
            self._threads, thread_name_prefix="treadle-wsgi"
        )
        self._errors = _Errors()

    def close(self) -> None:
        """Stop the pool (after the server has drained)."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    async def __call__(self, request: Request, body: Body, writer: ResponseWriter) -> None:
        """Serve one request through the app, in the pool."""
        limit = self._limit
        if limit is not None and request.content_length and request.content_length > limit:
            raise HTTPError(
                413, f"the body is {request.content_length} bytes; the limit is {limit}"
            )
        if self._busy >= self._threads + self._queue:
            await writer.send(
                503,
                [("Content-Type", "text/plain; charset=utf-8"), ("Retry-After", "1")],
                b"503 Service Unavailable: every thread is busy\n",
            )
            return
        if writer._conn._transport is None:
            return  # the client left while this request waited: no work for nobody
        loop = asyncio.get_running_loop()
        call = _Call(writer, loop)
        call.environ = self._environ(request, body, writer, loop, call.refuse)
        self._busy += 1
        try:
            result = await loop.run_in_executor(self._pool, call.run, self._app)
        except BaseException:
            if call.refused:
                return  # answered already; the app's error is the echo of it
            raise
        finally:
            self._busy -= 1
        if call.refused:
            return
        if result is not None:
            status, headers, data, file, length = result
            if file is not None:
                await _send_file(writer, status, headers, file, length)
            elif length and not data and request.method == "HEAD":
                # The length of a body a HEAD response never carries.
                await writer.start(status, headers, content_length=length)
                await writer.write_eof()
            elif writer.send_nowait(status, headers, data):
                await writer.drain()

    def _environ(
        self,
        request: Request,
        body: Body,
        writer: ResponseWriter,
        loop: asyncio.AbstractEventLoop,
        refuse: Callable[[HTTPError], None],
    ) -> dict[str, Any]:
        raw_path = request.path
        path = unquote_to_bytes(raw_path).decode("latin-1") if "%" in raw_path else raw_path
        root = self._root
        if root and (path == root or path.startswith(root + "/")):
            path = path[len(root) :]
        sockname = writer.get_extra_info("sockname")
        client = writer.client
        environ: dict[str, Any] = {
            "REQUEST_METHOD": request.method,
            "SCRIPT_NAME": root,
            "PATH_INFO": path,
            "QUERY_STRING": request.query_string,
            "SERVER_PROTOCOL": f"HTTP/{request.version[0]}.{request.version[1]}",
            "SERVER_NAME": str(sockname[0]) if isinstance(sockname, tuple) else "localhost",
            "SERVER_PORT": str(sockname[1]) if isinstance(sockname, tuple) else "0",
            "REMOTE_ADDR": client[0] if client is not None else "",
            "REMOTE_PORT": str(client[1]) if client is not None else "",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": writer.scheme,
            "wsgi.input": _Input(body, loop, self._limit, refuse),
            "wsgi.errors": self._errors,
            "wsgi.multithread": True,
            "wsgi.multiprocess": self._multiprocess,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,
            "wsgi.file_wrapper": FileWrapper,
        }
        for lname, _, value in request.headers._fields:
            if b"_" in lname:
                continue  # see the module docstring
            text = value.decode("latin-1")
            if lname == b"content-type":
                environ["CONTENT_TYPE"] = text
                continue
            if lname == b"content-length":
                environ["CONTENT_LENGTH"] = text
                continue
            key = "HTTP_" + lname.decode("latin-1").upper().replace("-", "_")
            if key in environ:
                environ[key] += ", " + text
            else:
                environ[key] = text
        if request.chunked:
            environ.pop("CONTENT_LENGTH", None)
        forwarded = writer.forwarded if writer._conn._config.proxy_headers else None
        if forwarded is not None and forwarded.host is not None:
            environ["HTTP_HOST"] = forwarded.host
        return environ


_Result = tuple[int, tuple[tuple[Any, Any], ...], bytes, "FileWrapper | None", "int | None"]


class _Call:
    """One request's run of the app, in a pool thread: `start_response`,
    `write()`, and the iteration of what the app returned."""

    def __init__(self, writer: ResponseWriter, loop: asyncio.AbstractEventLoop) -> None:
        self.environ: dict[str, Any] = {}
        self.refused = False  # the server answered for the app (see refuse())
        self.writer = writer
        self.loop = loop
        self.status = 0
        self.headers: tuple[tuple[Any, Any], ...] = ()
        self.length: int | None = None
        self.started = False  # the head is out

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], None]:
        if exc_info is not None:
            try:
                if self.started:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # no cycle through the traceback
        elif self.status:
            raise RuntimeError("start_response() called twice without exc_info")
        code, _, _reason = status.partition(" ")
        if not code.isdigit() or len(code) != 3:
            raise ValueError(f"start_response: bad status {status!r}")
        self.status = int(code)
        self.headers, self.length = take_framing(headers)
        return self.write

    def refuse(self, exc: HTTPError) -> None:
        """From the app's thread: answer with `exc`'s status (if nothing was
        sent yet) and close after it; whatever the app does next is dropped."""
        self.refused = True
        self._await(_refuse(self.writer, exc))

    def _await(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def write(self, data: bytes) -> None:
        """The legacy `write()` callable, and the streaming path."""
        if not self.status:
            raise RuntimeError("write() before start_response()")
        if not self.started:
            self.started = True
            self._await(self.writer.start(self.status, self.headers, content_length=self.length))
        if data:
            self._await(self.writer.write(bytes(data)))

    def run(self, app: WSGIApp) -> _Result | None:
        """Run the app; a whole response to send from the loop, or None when
        it was streamed from here."""
        result = app(self.environ, self.start_response)
        handed_over = False  # a file wrapper the loop sends (and closes)
        try:
            if isinstance(result, FileWrapper) and _has_fileno(result.filelike):
                if not self.status:
                    raise RuntimeError("the app returned without calling start_response()")
                handed_over = True
                return self.status, self.headers, b"", result, self.length
            if not self.started and (
                isinstance(result, (list, tuple))
                or (self.length is not None and self.length <= _BUFFER_MAX)
            ):
                # A list, or a body whose announced length is small (Flask's
                # and Django's responses are iterables that say their
                # length): gathered here and sent in one write from the
                # loop, not a round trip to the loop per piece. (A stream
                # with no length, server-sent events say, is not held back.)
                data = b"".join(result)
                if not self.status:
                    raise RuntimeError("the app returned without calling start_response()")
                head_only = self.environ["REQUEST_METHOD"] == "HEAD" and not data
                if self.length is not None and self.length != len(data) and not head_only:
                    raise RuntimeError(
                        f"the body is {len(data)} bytes, but Content-Length said {self.length}"
                    )
                return self.status, self.headers, data, None, self.length
            for chunk in result:
                if chunk:
                    self.write(chunk)
            if not self.status:
                raise RuntimeError("the app returned without calling start_response()")
            if not self.started:
                self.started = True
                self._await(
                    self.writer.start(self.status, self.headers, content_length=self.length)
                )
            self._await(self.writer.write_eof())
            return None
        finally:
            close = getattr(result, "close", None)
            if close is not None and not handed_over:
                close()


async def _refuse(writer: ResponseWriter, exc: HTTPError) -> None:
    writer.force_close()
    if not writer.started:
        try:
            await writer.send(
                exc.status,
                [("Content-Type", "text/plain; charset=utf-8")],
                f"{exc.status} {exc.reason}: {exc.detail}\n".encode(),
            )
        except ConnectionError:
            pass


def _has_fileno(file: Any) -> bool:
    try:
        file.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        return False
    return True


async def _send_file(
    writer: ResponseWriter,
    status: int,
    headers: tuple[tuple[Any, Any], ...],
    wrapper: FileWrapper,
    length: int | None,
) -> None:
    file = wrapper.filelike
    try:
        offset = file.tell()
        size = max(0, os.fstat(file.fileno()).st_size - offset)
        if length is not None:
            size = min(size, length)  # PEP 3333: never more than the app said
        await writer.start(status, headers, content_length=size)
        if size > 0 and writer._request.method != "HEAD":
            await writer.sendfile(file, offset, size)
        await writer.write_eof()
    finally:
        with contextlib.suppress(Exception):
            wrapper.close()


class WSGIRunner(ServerRunner):
    """Runs a WSGI app on Treadle's server (the sites and the graceful stop
    are `ServerRunner`'s, shared with `web.AppRunner` and the ASGI runner);
    `cleanup()` stops the thread pool once the server has drained."""

    def __init__(
        self,
        app: WSGIApp,
        *,
        root_path: str = "",
        threads: int | None = None,
        queue: int | None = None,
        limit_request_body: int | None = None,
        multiprocess: bool = False,
        access_log: logging.Logger | None = None,
        shutdown_timeout: float = 60.0,
        config: ServerConfig | None = None,
        handle_signals: bool = False,
        **kwargs: Any,
    ) -> None:
        if not callable(app):
            raise TypeError(f"{app!r} is not a WSGI application (not callable)")
        super().__init__(
            access_log=access_log,
            shutdown_timeout=shutdown_timeout,
            config=config,
            handle_signals=handle_signals,
            **kwargs,
        )
        self._app = app
        self._settings: dict[str, Any] = {
            "root_path": root_path,
            "threads": threads,
            "queue": queue,
            "limit_request_body": limit_request_body,
            "multiprocess": multiprocess,
        }
        self._handler: WSGIHandler | None = None

    @property
    def app(self) -> WSGIApp:
        return self._app

    async def _start(self) -> App:
        self._handler = WSGIHandler(self._app, **self._settings)
        return self._handler

    def _server_config(self) -> ServerConfig:
        # The body streams to the app: the framework's 1 MiB cap is not the
        # server's (limit_request_body sets one, checked as the body flows).
        return self._with_body_limit(super()._server_config(), NO_BODY_LIMIT)

    async def _stop(self) -> None:
        handler = self._handler
        if handler is not None:
            await asyncio.get_running_loop().run_in_executor(None, handler.close)
