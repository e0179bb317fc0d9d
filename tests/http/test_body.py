"""The request body stream on its own: slicing, EOF, errors, waiting."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import run
from treadle.http import Body, Headers, HTTPError
from treadle.http.body import EMPTY_BODY


class Owner:
    """Records what the body tells its connection."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def body_wanted(self, body: Body) -> None:
        self.calls.append("wanted")

    def body_consumed(self, body: Body) -> None:
        self.calls.append("consumed")

    def body_satisfied(self, body: Body) -> None:
        self.calls.append("satisfied")


def test_reads_slice_across_pieces(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        body = Body(Owner())
        for piece in (b"hel", b"lo ", b"wor", b"ld"):
            body.feed_data(piece)
        body.feed_eof(Headers([(b"X-T", b"1")]))
        assert body.buffered == 11 and not body.at_eof()
        assert await body.read(0) == b""
        assert await body.read(2) == b"he"
        assert await body.read(4) == b"llo "
        assert await body.readexactly(3) == b"wor"
        assert await body.readany() == b"ld"
        assert body.at_eof() and await body.read() == b"" and await body.readany() == b""
        assert body.trailers.get("x-t") == "1"

    run(loop, main())


def test_read_all_waits_for_eof_and_tells_the_owner(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        owner = Owner()
        body = Body(owner)
        task = asyncio.ensure_future(body.read())
        await asyncio.sleep(0)
        assert owner.calls == ["wanted"]
        body.feed_data(b"a")
        await asyncio.sleep(0)
        body.feed_data(b"b")
        body.feed_eof()
        assert await task == b"ab"
        assert owner.calls.count("wanted") == owner.calls.count("satisfied")

    run(loop, main())


def test_iter_chunked(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        body = Body(Owner())
        body.feed_data(b"x" * 10)
        body.feed_eof()
        assert [len(p) async for p in body.iter_chunked(4)] == [4, 4, 2]
        with pytest.raises(ValueError, match="positive"):
            async for _ in Body().iter_chunked(0):
                pass

    run(loop, main())


def test_errors_surface_at_the_next_read(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        body = Body(Owner())
        body.feed_data(b"ok")
        body.set_exception(HTTPError(413, "too big"))
        assert await body.readany() == b"ok"  # what arrived before the error
        with pytest.raises(HTTPError, match="too big"):
            await body.read()
        short = Body(Owner())
        short.feed_data(b"abc")
        short.feed_eof()
        with pytest.raises(asyncio.IncompleteReadError):
            await short.readexactly(5)
        with pytest.raises(RuntimeError, match="not connected"):
            await Body().read()

    run(loop, main())


def test_discard_drops_the_rest() -> None:
    body = Body(Owner())
    body.feed_data(b"abc")
    body.discard()
    body.feed_data(b"def")
    assert body.buffered == 0


def test_the_shared_empty_body(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        assert EMPTY_BODY.at_eof() and await EMPTY_BODY.read() == b""
        EMPTY_BODY.set_exception(HTTPError(400, "x"))  # ignored: it is finished
        assert await EMPTY_BODY.readany() == b"" and "eof" in repr(EMPTY_BODY)

    run(loop, main())
