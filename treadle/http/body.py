"""The request body as an async stream the application reads at its own pace.

The server protocol feeds a `Body` with the pieces the parser produces; the
application awaits `read()`, `readany()` or iterates `iter_chunked(n)`. The body
tells its owner (the connection) when the application wants bytes it does not
have yet, so the owner can send `100 Continue` the first time, resume reading
the socket, and start the body read timeout; and when the application has taken
bytes out, so reading can resume after back-pressure paused it.

Errors from the network (a malformed chunk, a body over the size limit, a read
timeout, the peer going away) are stored and raised from the next read, so the
application sees them where it is looking: at the body.

Most requests have no body; they all share one empty, finished `Body`
(`EMPTY_BODY`) rather than each allocating its own.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import Protocol

from .headers import Headers

__all__ = ["EMPTY_BODY", "Body"]

_NO_TRAILERS = Headers()


class BodyOwner(Protocol):
    """What a `Body` needs from the connection feeding it."""

    def body_wanted(self, body: Body) -> None:
        """The application waits for bytes that have not arrived."""

    def body_consumed(self, body: Body) -> None:
        """The application took bytes out of the buffer."""

    def body_satisfied(self, body: Body) -> None:
        """A wait for bytes ended (bytes, EOF or an error arrived)."""


class Body:
    """The body of one request: an async byte stream ending at EOF."""

    __slots__ = ("_chunks", "_discard", "_eof", "_exc", "_owner", "_size", "_trailers", "_waiter")

    def __init__(self, owner: BodyOwner | None = None) -> None:
        """An empty, open body fed by `owner`'s connection (None for a detached one)."""
        self._owner = owner
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._eof = False
        self._exc: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._trailers = _NO_TRAILERS
        self._discard = False

    # -- the connection's side ------------------------------------------------

    @property
    def buffered(self) -> int:
        """Bytes received and not yet read."""
        return self._size

    def feed_data(self, data: bytes) -> None:
        """Append body bytes (dropped once the application has finished)."""
        if self._discard:
            return
        self._chunks.append(data)
        self._size += len(data)
        self._wake()

    def feed_eof(self, trailers: Headers | None = None) -> None:
        """The body is complete; `trailers` are a chunked body's trailer fields."""
        self._eof = True
        if trailers is not None:
            self._trailers = trailers
        self._wake()

    def set_exception(self, exc: BaseException) -> None:
        """Make the next read raise `exc` (once buffered bytes are gone, unless
        the error makes them meaningless, which the caller decides by
        calling this before or after feeding)."""
        if self._exc is None and not self._eof:
            self._exc = exc
        self._wake()

    def discard(self) -> None:
        """The handler is done: drop what is buffered and whatever still comes."""
        self._discard = True
        self._chunks.clear()
        self._size = 0

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def _wait(self) -> None:
        if self._exc is not None:
            raise self._exc
        owner = self._owner
        if owner is None:
            raise RuntimeError("this body is not connected to a connection")
        waiter = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        owner.body_wanted(self)
        try:
            await waiter
        finally:
            self._waiter = None
            owner.body_satisfied(self)

    def _take(self, n: int) -> bytes:
        chunks = self._chunks
        if n < 0 or n >= self._size:
            data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
            chunks.clear()
        else:
            first = chunks[0]
            if len(first) > n:
                data = first[:n]
                chunks[0] = first[n:]
            elif len(first) == n:
                data = chunks.popleft()
            else:
                parts = []
                need = n
                while need:
                    piece = chunks.popleft()
                    if len(piece) > need:
                        chunks.appendleft(piece[need:])
                        piece = piece[:need]
                    parts.append(piece)
                    need -= len(piece)
                data = b"".join(parts)
        self._size -= len(data)
        if self._owner is not None:
            self._owner.body_consumed(self)
        return data

    # -- the application's side -----------------------------------------------

    @property
    def trailers(self) -> Headers:
        """A chunked body's trailer fields (empty until EOF, and for other bodies)."""
        return self._trailers

    def at_eof(self) -> bool:
        """Whether the body is complete and every byte of it has been read."""
        return self._eof and not self._size

    async def read(self, n: int = -1) -> bytes:
        """Up to `n` bytes, or (n < 0) everything up to EOF. Returns b'' at EOF.

        Raises `HTTPError` for a broken or oversized body (413) or a read timeout
        (408), and `ConnectionResetError` if the peer went away.
        """
        if n < 0:
            while not self._eof:
                await self._wait()
            if self._exc is not None:
                raise self._exc
            return self._take(-1) if self._size else b""
        if n == 0:
            return b""
        while not self._size:
            if self._eof:
                return b""
            await self._wait()
        return self._take(n)

    async def readany(self) -> bytes:
        """Whatever is buffered (at least one byte), or b'' at EOF."""
        while not self._size:
            if self._eof:
                return b""
            await self._wait()
        return self._take(-1)

    async def readexactly(self, n: int) -> bytes:
        """Exactly `n` bytes; `asyncio.IncompleteReadError` if EOF comes first."""
        while self._size < n:
            if self._eof:
                partial = self._take(-1) if self._size else b""
                raise asyncio.IncompleteReadError(partial, n)
            await self._wait()
        return self._take(n)

    async def iter_chunked(self, n: int) -> AsyncIterator[bytes]:
        """Yield pieces of at most `n` bytes until EOF."""
        if n <= 0:
            raise ValueError(f"chunk size must be positive, not {n}")
        while True:
            data = await self.read(n)
            if not data:
                return
            yield data

    def __repr__(self) -> str:
        state = "eof" if self._eof else "open"
        return f"<Body {state} buffered={self._size}>"


def _empty_body() -> Body:
    body = Body()
    body._eof = True
    return body


#: The body of every request without one: finished and empty.
EMPTY_BODY = _empty_body()
