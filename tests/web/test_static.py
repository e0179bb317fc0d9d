"""Static files and `FileResponse` over real sockets, on Treadle's loop and the
stdlib loop (and uvloop, which has no `loop.sendfile`, for the read-and-write
path): types, lengths and bodies, HEAD, every path-traversal form, symlinks,
directory listings, conditional requests, byte ranges, `url_for` versions,
TLS, a file that shrinks while it is sent, and file descriptors."""

from __future__ import annotations

import asyncio
import base64
import email.utils
import gzip
import hashlib
import html
import logging
import os
import ssl
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run
from treadle import web
from treadle.http import Body, HTTPServer, Request as Message, ResponseWriter
from treadle.testing import ClientResponse, TestClient, read_response
from treadle.web.files import _off_loop, _open_regular, _OpenFile

SECRET = b"the secret outside the root"
MTIME = 1_600_000_000.25  # a fixed past time with a fraction of a second
MTIME_NS = 1_600_000_000_250_000_000
LAST_MODIFIED = "Sun, 13 Sep 2020 12:26:40 GMT"

Scenario = Callable[[TestClient], Awaitable[Any]]


def serve(loop: asyncio.AbstractEventLoop, app: web.Application, scenario: Scenario) -> Any:
    """Run `scenario(client)` against `app` served on a free port."""

    async def main() -> Any:
        async with TestClient(app) as client:
            return await scenario(client)

    return run(loop, main())


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """tmp_path/root (the served directory) with a few files, and a secret
    file next to it that no static URL may reach."""
    (tmp_path / "secret.txt").write_bytes(SECRET)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "inner.txt").write_bytes(SECRET)
    root = tmp_path / "root"
    root.mkdir()
    (root / "hello.txt").write_bytes(b"hello, world\n")
    (root / "page.html").write_bytes(b"<h1>hi</h1>")
    (root / "data.bin").write_bytes(bytes(range(256)))
    (root / "empty.txt").write_bytes(b"")
    (root / "archive.tar.gz").write_bytes(gzip.compress(b"tar"))
    (root / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (root / "a b%c.txt").write_bytes(b"odd name")
    (root / "sub").mkdir()
    (root / "sub" / "nested.txt").write_bytes(b"nested")
    for path in root.rglob("*"):
        os.utime(path, ns=(MTIME_NS, MTIME_NS))
    return root


def static_app(root: Path, **kwargs: Any) -> web.Application:
    app = web.Application()
    app.router.add_static("/static", root, name="static", **kwargs)
    return app


def etag_of(path: Path) -> str:
    st = path.stat()
    return f'"{st.st_mtime_ns:x}-{st.st_size:x}"'


async def raw_request(port: int, head: bytes) -> ClientResponse:
    """Send `head` as it is over a new connection; read one response."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        await writer.drain()
        return await read_response(reader, head.split(b" ", 1)[0].decode())
    finally:
        writer.close()
        await writer.wait_closed()


# -- files, types, HEAD, 404 -----------------------------------------------------------------


def test_files_are_served_with_type_length_and_validators(
    loop: asyncio.AbstractEventLoop, site: Path
) -> None:
    async def scenario(client: TestClient) -> None:
        expected = {
            "hello.txt": "text/plain; charset=utf-8",
            "page.html": "text/html; charset=utf-8",
            "data.bin": "application/octet-stream",
            "image.png": "image/png",
            "archive.tar.gz": "application/gzip",  # the archive, not a Content-Encoding
            "empty.txt": "text/plain; charset=utf-8",
        }
        for name, ctype in expected.items():
            resp = await client.get(f"/static/{name}")
            body = (site / name).read_bytes()
            assert (resp.status, resp.body) == (200, body), name
            assert resp.headers["Content-Type"] == ctype
            assert resp.headers["Content-Length"] == str(len(body))
            assert resp.headers["ETag"] == etag_of(site / name) == f'"{MTIME_NS:x}-{len(body):x}"'
            assert resp.headers["Last-Modified"] == LAST_MODIFIED
            assert resp.headers["Accept-Ranges"] == "bytes"
            assert resp.headers.get("Content-Encoding") is None
        resp = await client.get("/static/a%20b%25c.txt")
        assert (resp.status, resp.body) == (200, b"odd name")
        assert (await client.get("/static/sub/nested.txt")).body == b"nested"

    serve(loop, static_app(site), scenario)


def test_a_multi_megabyte_binary_file_arrives_byte_for_byte(
    loop: asyncio.AbstractEventLoop, tmp_path: Path
) -> None:
    data = os.urandom(5 * 1024 * 1024 + 7)
    (tmp_path / "big.bin").write_bytes(data)

    async def scenario(client: TestClient) -> None:
        for _ in range(2):  # the keep-alive connection carries on after sendfile
            resp = await client.get("/static/big.bin")
            assert resp.status == 200
            assert resp.headers["Content-Length"] == str(len(data))
            assert resp.body == data
        resp = await client.get("/static/big.bin", headers={"Range": "bytes=1000000-3999999"})
        assert resp.status == 206
        assert resp.body == data[1000000:4000000]

    serve(loop, static_app(tmp_path, chunk_size=65536), scenario)


def test_head_gets_the_headers_of_get_without_the_body(
    loop: asyncio.AbstractEventLoop, site: Path
) -> None:
    async def scenario(client: TestClient) -> None:
        get = await client.get("/static/data.bin")
        head = await client.head("/static/data.bin")
        assert (head.status, head.body) == (200, b"")
        for name in ("Content-Type", "Content-Length", "ETag", "Last-Modified", "Accept-Ranges"):
            assert head.headers[name] == get.headers[name]
        # Range is defined for GET only (RFC 9110 14.2).
        head = await client.head("/static/data.bin", headers={"Range": "bytes=0-9"})
        assert (head.status, head.headers["Content-Length"]) == (200, "256")
        # The connection is still in step after the HEADs.
        assert (await client.get("/static/hello.txt")).body == b"hello, world\n"

    serve(loop, static_app(site), scenario)


def test_missing_files_directories_and_other_methods(
    loop: asyncio.AbstractEventLoop, site: Path
) -> None:
    os.mkfifo(site / "fifo")

    async def scenario(client: TestClient) -> None:
        for path in (
            "/static/missing.txt",
            "/static/sub/missing.txt",
            "/static/hello.txt/",  # a trailing slash asks for a directory
            "/static/hello.txt/x",
            "/static/sub",  # directories: no listing, no index.html
            "/static/sub/",
            "/static",
            "/static/",
            "/static/fifo",  # not a regular file (and opening it must not block)
        ):
            resp = await client.get(path)
            assert (resp.status, resp.text) == (404, "404: Not Found"), path
        (site / "sub" / "index.html").write_bytes(b"index")
        assert (await client.get("/static/sub/")).status == 404
        resp = await client.post("/static/hello.txt")
        assert resp.status == 405
        assert resp.headers["Allow"] == "GET, HEAD"

    serve(loop, static_app(site), scenario)


# -- path traversal --------------------------------------------------------------------------

TRAVERSALS = [
    "/static/../secret.txt",
    "/static/%2e%2e/secret.txt",
    "/static/%2E%2e/secret.txt",
    "/static/.%2e/secret.txt",
    "/static/..%2Fsecret.txt",
    "/static/..%2fsecret.txt",
    "/static/sub/../../secret.txt",
    "/static/sub/%2e%2e/%2e%2e/secret.txt",
    "/static/sub%2F..%2F..%2Fsecret.txt",
    "/static/..%5Csecret.txt",
    "/static/%5C..%5Csecret.txt",
    "/static/..\\secret.txt",
    "/static/sub\\..\\..\\secret.txt",
    "/static/secret.txt%00.txt",
    "/static/hello.txt%00",
    "/static//etc/passwd",
    "/static/%2Fetc/passwd",
    "/static//" + "{root}/../secret.txt",
    "/static/%2F{root}/hello.txt",  # absolute, even when it names a file inside the root
    "/static/sub//nested.txt",
    "/static/./hello.txt",
    "/static/sub/./nested.txt",
    "/static/%2e/hello.txt",
    "/static/..",
    "/static/%2e%2e",
    "/static/sub/..",
    "/static/...",  # a name that does not exist: plain 404
    "/static/%252e%252e/secret.txt",  # decodes once, to the literal name "%2e%2e"
]


def test_every_traversal_form_is_a_404(loop: asyncio.AbstractEventLoop, site: Path) -> None:
    paths = [p.replace("{root}", str(site).lstrip("/")) for p in TRAVERSALS]

    async def scenario(client: TestClient) -> None:
        for path in paths:
            resp = await client.get(path)
            assert resp.status == 404, path
            assert SECRET not in resp.body

    serve(loop, static_app(site, show_index=True, follow_symlinks=True), scenario)


def test_traversal_as_raw_bytes_on_a_socket(loop: asyncio.AbstractEventLoop, site: Path) -> None:
    heads = [
        b"GET /static/../secret.txt HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /static/%2e%2e/secret.txt HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /static/..%2f..%2fsecret.txt HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /static/..\\secret.txt HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /static/%00/../secret.txt HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET http://x/static/../secret.txt HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /static//" + str(site.parent).encode().lstrip(b"/") + b"/secret.txt HTTP/1.1\r\n"
        b"Host: x\r\n\r\n",
        b"GET /static/../secret.txt HTTP/1.0\r\n\r\n",
    ]
    refused_by_parser = [
        b"GET /static/\x00/secret.txt HTTP/1.1\r\nHost: x\r\n\r\n",  # raw NUL: not a valid target
        b"GET /static/ ../secret.txt HTTP/1.1\r\nHost: x\r\n\r\n",
    ]

    async def scenario(client: TestClient) -> None:
        for head in heads:
            resp = await raw_request(client.port, head)
            assert resp.status == 404, head
            assert SECRET not in resp.body
        for head in refused_by_parser:
            resp = await raw_request(client.port, head)
            assert resp.status == 400, head
            assert SECRET not in resp.body

    serve(loop, static_app(site), scenario)


# -- symlinks --------------------------------------------------------------------------------


def make_links(root: Path) -> None:
    outside = root.parent
    (root / "inside-link.txt").symlink_to("hello.txt")
    (root / "sub" / "up-link.txt").symlink_to("../hello.txt")
    (root / "inside-dir").symlink_to("sub", target_is_directory=True)
    (root / "out-link.txt").symlink_to(outside / "secret.txt")
    (root / "out-relative.txt").symlink_to("../secret.txt")
    (root / "out-dir").symlink_to(outside / "outside", target_is_directory=True)
    (root / "broken.txt").symlink_to("no-such-file")
    (root / "loop-a").symlink_to("loop-b")
    (root / "loop-b").symlink_to("loop-a")


def test_symlinks_within_the_root_are_followed_and_out_of_it_refused(
    loop: asyncio.AbstractEventLoop, site: Path
) -> None:
    make_links(site)

    async def scenario(client: TestClient) -> None:
        for path in ("/static/inside-link.txt", "/static/sub/up-link.txt"):
            assert (await client.get(path)).body == b"hello, world\n", path
        assert (await client.get("/static/inside-dir/nested.txt")).body == b"nested"
        for path in (
            "/static/out-link.txt",
            "/static/out-relative.txt",
            "/static/out-dir/inner.txt",
            "/static/broken.txt",
            "/static/loop-a",
        ):
            resp = await client.get(path)
            assert resp.status == 404, path
            assert SECRET not in resp.body

    serve(loop, static_app(site), scenario)


def test_follow_symlinks_follows_links_out_of_the_root(
    loop: asyncio.AbstractEventLoop, site: Path
) -> None:
    make_links(site)

    async def scenario(client: TestClient) -> None:
        for path in (
            "/static/out-link.txt",
            "/static/out-relative.txt",
            "/static/out-dir/inner.txt",
        ):
            assert (await client.get(path)).body == SECRET, path
        assert (await client.get("/static/inside-link.txt")).body == b"hello, world\n"
        # What it follows are links under the root; the URL still cannot leave it.
        for path in ("/static/broken.txt", "/static/loop-a", "/static/../secret.txt"):
            assert (await client.get(path)).status == 404, path

    serve(loop, static_app(site, follow_symlinks=True), scenario)


# -- directory listings ----------------------------------------------------------------------


def test_show_index_lists_a_directory_with_escaped_names(
    loop: asyncio.AbstractEventLoop, site: Path
) -> None:
    tricky = "<img src=x onerror='1'> & \"q\".txt"
    (site / "sub" / tricky).write_bytes(b"tricky")
    (site / "sub" / "deeper").mkdir()
    (site / "sub" / "away.txt").symlink_to(site.parent / "secret.txt")
    os.mkfifo(site / "sub" / "fifo")

    async def scenario(client: TestClient) -> None:
        resp = await client.get("/static/sub/")
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
        page = resp.text
        assert "<img" not in page
        assert "&lt;img src=x onerror=&#x27;1&#x27;&gt; &amp; &quot;q&quot;.txt" in page
        assert "<title>Index of /static/sub/</title>" in page
        assert '<a href="/static/sub/deeper/">deeper/</a>' in page
        assert '<a href="/static/sub/nested.txt">nested.txt</a>' in page
        # Entries it would not serve are left out.
        assert "away.txt" not in page
        assert "fifo" not in page
        # The links work.
        href = page.split('<a href="')[1].split('"')[0]
        assert href.startswith("/static/sub/%3Cimg%20src")
        resp = await client.get(html.unescape(href))
        assert resp.body == b"tricky"
        root = await client.get("/static/")
        assert '<a href="/static/sub/">sub/</a>' in root.text
        assert (await client.get("/static")).text == root.text
        assert (await client.get("/static/sub")).status == 200
        head = await client.head("/static/sub/")
        assert (head.status, head.body) == (200, b"")

    serve(loop, static_app(site, show_index=True), scenario)


# -- conditional requests --------------------------------------------------------------------


def test_etag_and_last_modified_round_trips(loop: asyncio.AbstractEventLoop, site: Path) -> None:
    tag = etag_of(site / "hello.txt")
    url = "/static/hello.txt"

    async def scenario(client: TestClient) -> None:
        first = await client.get(url)
        assert first.headers["ETag"] == tag

        async def status(**headers: str) -> int:
            return (await client.get(url, headers=headers)).status

        resp = await client.get(url, headers={"If-None-Match": tag})
        assert (resp.status, resp.body) == (304, b"")
        assert resp.headers["ETag"] == tag
        assert resp.headers["Last-Modified"] == LAST_MODIFIED
        assert resp.headers.get("Content-Length") is None
        assert await status(**{"If-None-Match": f"W/{tag}"}) == 304  # weak comparison
        assert await status(**{"If-None-Match": f'"nope", {tag}'}) == 304
        assert await status(**{"If-None-Match": "*"}) == 304
        assert await status(**{"If-None-Match": '"nope"'}) == 200

        assert await status(**{"If-Modified-Since": LAST_MODIFIED}) == 304
        later = email.utils.formatdate(MTIME + 3600, usegmt=True)
        earlier = email.utils.formatdate(MTIME - 1, usegmt=True)
        assert await status(**{"If-Modified-Since": later}) == 304
        assert await status(**{"If-Modified-Since": earlier}) == 200
        assert await status(**{"If-Modified-Since": "not a date"}) == 200
        # If-None-Match takes precedence over If-Modified-Since (RFC 9110 13.2.2).
        assert await status(**{"If-None-Match": '"nope"', "If-Modified-Since": later}) == 200
        assert await status(**{"If-None-Match": tag, "If-Modified-Since": earlier}) == 304

        resp = await client.head(url, headers={"If-None-Match": tag})
        assert resp.status == 304
        # The file changes: the old validators no longer hold.
        (site / "hello.txt").write_bytes(b"changed")
        resp = await client.get(url, headers={"If-None-Match": tag})
        assert (resp.status, resp.body) == (200, b"changed")
        assert resp.headers["ETag"] != tag

    serve(loop, static_app(site), scenario)


def test_if_match_and_if_unmodified_since_give_412(
    loop: asyncio.AbstractEventLoop, site: Path
) -> None:
    tag = etag_of(site / "hello.txt")

    async def scenario(client: TestClient) -> None:
        async def get(**headers: str) -> ClientResponse:
            return await client.get("/static/hello.txt", headers=headers)

        resp = await get(**{"If-Match": '"other"'})
        assert (resp.status, resp.text) == (412, "412: Precondition Failed")
        assert resp.headers.get("ETag") is None
        assert (await get(**{"If-Match": f"W/{tag}"})).status == 412  # strong comparison
        assert (await get(**{"If-Match": tag})).status == 200
        assert (await get(**{"If-Match": f'"x", {tag}'})).status == 200
        assert (await get(**{"If-Match": "*"})).status == 200
        earlier = email.utils.formatdate(MTIME - 60, usegmt=True)
        assert (await get(**{"If-Unmodified-Since": earlier})).status == 412
        assert (await get(**{"If-Unmodified-Since": LAST_MODIFIED})).status == 200
        # If-Match, when present, decides alone.
        assert (await get(**{"If-Match": tag, "If-Unmodified-Since": earlier})).status == 200
        # 412 comes before 304.
        assert (await get(**{"If-Match": '"x"', "If-None-Match": tag})).status == 412
        assert (await client.head("/static/hello.txt", headers={"If-Match": '"x"'})).status == 412

    serve(loop, static_app(site), scenario)


# -- ranges ----------------------------------------------------------------------------------


def test_byte_ranges(loop: asyncio.AbstractEventLoop, site: Path) -> None:
    data = bytes(range(256))

    async def scenario(client: TestClient) -> None:
        async def get(value: str, **headers: str) -> ClientResponse:
            return await client.get("/static/data.bin", headers={"Range": value, **headers})

        for value, start, stop in (
            ("bytes=0-0", 0, 1),
            ("bytes=10-19", 10, 20),
            ("bytes=250-", 250, 256),
            ("bytes=-6", 250, 256),
            ("bytes=200-999", 200, 256),  # past the end: to the end
            ("bytes=-1000", 0, 256),  # longer than the file: all of it, still 206
            ("BYTES = 5-6", 5, 7),
        ):
            resp = await get(value)
            assert resp.status == 206, value
            assert resp.body == data[start:stop]
            assert resp.headers["Content-Range"] == f"bytes {start}-{stop - 1}/256"
            assert resp.headers["Content-Length"] == str(stop - start)
            assert resp.headers["ETag"] == etag_of(site / "data.bin")
        for value in ("bytes=256-", "bytes=1000-2000", "bytes=-0"):
            resp = await get(value)
            assert resp.status == 416, value
            assert resp.headers["Content-Range"] == "bytes */256"
        # Several ranges, malformed ones and other units: the whole file.
        for value in ("bytes=0-1,5-6", "bytes=5-1", "bytes=x-y", "bytes=", "bytes=-", "items=0-1"):
            resp = await get(value)
            assert (resp.status, resp.body) == (200, data), value
            assert resp.headers.get("Content-Range") is None
        empty = await client.get("/static/empty.txt", headers={"Range": "bytes=0-"})
        assert empty.status == 416
        assert empty.headers["Content-Range"] == "bytes */0"
        empty = await client.get("/static/empty.txt", headers={"Range": "bytes=-5"})
        assert (empty.status, empty.body) == (200, b"")

    serve(loop, static_app(site), scenario)


def test_if_range_decides_between_206_and_200(loop: asyncio.AbstractEventLoop, site: Path) -> None:
    tag = etag_of(site / "data.bin")
    data = bytes(range(256))

    async def scenario(client: TestClient) -> None:
        async def status(if_range: str) -> int:
            resp = await client.get(
                "/static/data.bin", headers={"Range": "bytes=0-9", "If-Range": if_range}
            )
            assert resp.body == (data[:10] if resp.status == 206 else data)
            return resp.status

        assert await status(tag) == 206
        assert await status(LAST_MODIFIED) == 206
        assert await status('"stale"') == 200
        assert await status(f"W/{tag}") == 200  # a weak tag never matches in If-Range
        assert await status(email.utils.formatdate(MTIME + 60, usegmt=True)) == 200  # exact only
        assert await status(email.utils.formatdate(MTIME - 60, usegmt=True)) == 200
        assert await status("garbage") == 200
        # A date is a strong validator only for a file that has not changed
        # since (RFC 9110 8.8.2.2): one with an mtime ahead of the clock fails.
        future = MTIME + 10 * 365 * 86400
        os.utime(site / "data.bin", (future, future))
        assert await status(email.utils.formatdate(future, usegmt=True)) == 200
        assert await status(etag_of(site / "data.bin")) == 206
        # Last-Modified is never later than Date (RFC 9110 8.8.2.1).
        resp = await client.get("/static/data.bin")
        last_modified = email.utils.parsedate_to_datetime(resp.headers["Last-Modified"])
        assert last_modified <= email.utils.parsedate_to_datetime(resp.headers["Date"])

    serve(loop, static_app(site), scenario)


# -- FileResponse from a handler -------------------------------------------------------------


def test_file_response_from_a_handler(loop: asyncio.AbstractEventLoop, site: Path) -> None:
    async def download(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(
            site / request.match_info["name"],
            headers={"Cache-Control": "max-age=60"},
        )

    async def typed(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(str(site / "data.bin"), headers={"Content-Type": "x/custom"})

    async def not_found_page(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(site / "page.html", status=404)

    async def prepared(request: web.Request) -> web.StreamResponse:
        response = web.FileResponse(site / "hello.txt")
        await response.prepare(request)
        await response.write_eof()  # harmless: the whole response is out
        return response

    app = web.Application()
    app.router.add_get("/download/{name}", download)
    app.router.add_get("/typed", typed)
    app.router.add_get("/404", not_found_page)
    app.router.add_get("/prepared", prepared)
    app.router.add_get("/dir", lambda r: web.FileResponse(site / "sub"))
    app.router.add_get("/link", lambda r: web.FileResponse(site / "link.txt"))
    (site / "link.txt").symlink_to(site.parent / "secret.txt")

    async def scenario(client: TestClient) -> None:
        resp = await client.get("/download/hello.txt")
        assert (resp.status, resp.body) == (200, b"hello, world\n")
        assert resp.headers["Cache-Control"] == "max-age=60"
        assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
        tag = resp.headers["ETag"]
        resp = await client.get("/download/hello.txt", headers={"If-None-Match": tag})
        assert resp.status == 304
        resp = await client.get("/download/data.bin", headers={"Range": "bytes=-2"})
        assert (resp.status, resp.body) == (206, b"\xfe\xff")
        resp = await client.get("/download/missing.txt")
        assert (resp.status, resp.text) == (404, "404: Not Found")
        assert (await client.get("/dir")).status == 404
        resp = await client.get("/typed")
        assert resp.headers["Content-Type"] == "x/custom"
        # A custom error page is never a 304 or a 206.
        resp = await client.get(
            "/404", headers={"If-None-Match": "*", "Range": "bytes=0-1", "If-Match": '"x"'}
        )
        assert (resp.status, resp.body) == (404, b"<h1>hi</h1>")
        assert (await client.get("/prepared")).body == b"hello, world\n"
        # The application chose the path: a symlink there is followed.
        assert (await client.get("/link")).body == SECRET
        head = await client.head("/download/data.bin")
        assert (head.status, head.headers["Content-Length"], head.body) == (200, "256", b"")

    serve(loop, app, scenario)


def test_compressed_file_response(loop: asyncio.AbstractEventLoop, tmp_path: Path) -> None:
    text = b"compress me, " * 50_000
    (tmp_path / "t.txt").write_bytes(text)

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.FileResponse(tmp_path / "t.txt", chunk_size=10_000)
        response.enable_compression()
        return response

    app = web.Application()
    app.router.add_get("/t", handler)

    async def scenario(client: TestClient) -> None:
        resp = await client.get("/t", headers={"Accept-Encoding": "gzip"})
        assert resp.status == 200
        assert resp.headers["Content-Encoding"] == "gzip"
        assert resp.headers["Transfer-Encoding"] == "chunked"
        assert gzip.decompress(resp.body) == text
        tag = resp.headers["ETag"]
        assert tag == "W/" + etag_of(tmp_path / "t.txt")
        resp = await client.get("/t", headers={"Accept-Encoding": "gzip", "If-None-Match": tag})
        assert resp.status == 304
        # A range is of the file's own bytes: not compressed, strong ETag.
        resp = await client.get("/t", headers={"Accept-Encoding": "gzip", "Range": "bytes=0-12"})
        assert (resp.status, resp.body) == (206, b"compress me, ")
        assert resp.headers.get("Content-Encoding") is None
        assert resp.headers["ETag"] == etag_of(tmp_path / "t.txt")
        head = await client.head("/t", headers={"Accept-Encoding": "gzip"})
        assert (head.status, head.headers["Content-Encoding"], head.body) == (200, "gzip", b"")
        plain = await client.get("/t")
        assert (plain.body, plain.headers.get("Content-Encoding")) == (text, None)

    serve(loop, app, scenario)


# -- url_for ---------------------------------------------------------------------------------


def test_url_for_and_append_version(site: Path) -> None:
    app = static_app(site)
    resource = app.router["static"]
    assert isinstance(resource, web.StaticResource)
    assert resource.url_for(filename="hello.txt") == "/static/hello.txt"
    assert resource.url_for(filename="/sub/nested.txt") == "/static/sub/nested.txt"
    assert resource.url_for(filename="a b%c.txt") == "/static/a%20b%25c.txt"
    assert resource.url_for(filename=Path("sub/nested.txt")) == "/static/sub/nested.txt"

    def version(data: bytes) -> str:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode()
        return digest.replace("=", "%3D")

    url = resource.url_for(filename="hello.txt", append_version=True)
    assert url == f"/static/hello.txt?v={version(b'hello, world' + bytes([10]))}"
    assert url.path == "/static/hello.txt"
    (site / "hello.txt").write_bytes(b"new contents")
    assert resource.url_for(filename="hello.txt", append_version=True).query_string == (
        f"v={version(b'new contents')}"
    )
    # No version for what it would not serve; refused names are misuse.
    assert resource.url_for(filename="missing.txt", append_version=True) == "/static/missing.txt"
    assert resource.url_for(filename="sub", append_version=True) == "/static/sub"
    (site / "out.txt").symlink_to(site.parent / "secret.txt")
    assert resource.url_for(filename="out.txt", append_version=True) == "/static/out.txt"
    for bad in ("../secret.txt", "sub/../hello.txt", "a//b", "a\\b", "./hello.txt"):
        with pytest.raises(ValueError):
            resource.url_for(filename=bad)

    versioned = web.Application()
    versioned.router.add_static("/s/", site, name="s", append_version=True)
    s = versioned.router["s"]
    assert isinstance(s, web.StaticResource)
    assert s.url_for(filename="page.html").startswith("/s/page.html?v=")
    assert s.url_for(filename="page.html", append_version=False) == "/s/page.html"
    assert s.get_info() == {"directory": site.resolve(), "prefix": "/s"}
    assert "StaticResource 's' /s" in repr(s)


def test_static_resource_arguments_and_route_tables(
    loop: asyncio.AbstractEventLoop, site: Path
) -> None:
    with pytest.raises(ValueError, match="No directory"):
        web.StaticResource("/x", site / "missing")
    with pytest.raises(ValueError, match="not a directory"):
        web.StaticResource("/x", site / "hello.txt")
    with pytest.raises(ValueError, match="prefix"):
        web.StaticResource("x", site)
    routes = web.RouteTableDef()
    routes.static("/files", site)
    app = web.Application()
    app.add_routes([*routes, web.static("/more", site / "sub")])
    # A static route at the root is tried after every other route.
    app.router.add_get("/api", lambda r: web.Response(text="api"))
    app.router.add_static("/", site)

    async def scenario(client: TestClient) -> None:
        assert (await client.get("/files/hello.txt")).body == b"hello, world\n"
        assert (await client.get("/more/nested.txt")).body == b"nested"
        assert (await client.get("/hello.txt")).body == b"hello, world\n"
        assert (await client.get("/sub/nested.txt")).body == b"nested"
        assert (await client.get("/api")).text == "api"
        assert (await client.get("/../secret.txt")).status == 404

    serve(loop, app, scenario)


# -- file descriptors, shrinking files, other transports ---------------------------------------


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_no_file_descriptor_leaks(loop: asyncio.AbstractEventLoop, tmp_path: Path) -> None:
    for i in range(200):
        (tmp_path / f"f{i}.txt").write_bytes(b"x" * i)
    tag = etag_of(tmp_path / "f7.txt")

    async def replace(request: web.Request, handler: Any) -> web.StreamResponse:
        response = await handler(request)
        if "replace" in request.query:
            return web.Response(text="replaced")  # the FileResponse is dropped unsent
        return response  # type: ignore[no-any-return]

    app = web.Application(middlewares=[replace])
    app.router.add_static("/s", tmp_path)

    async def scenario(client: TestClient) -> None:
        # Each count follows a request for no file: a connection handles one
        # request at a time, so the handler before it (and its finally) is done.
        assert (await client.get("/s/f1.txt")).status == 200  # the connection is open
        assert (await client.get("/s/missing")).status == 404
        before = open_fds()
        for i in range(200):
            resp = await client.get(f"/s/f{i}.txt")
            assert resp.body == b"x" * i
        for headers in ({"If-None-Match": tag}, {"If-Match": '"x"'}, {"Range": "bytes=99-"}):
            assert (await client.get("/s/f7.txt", headers=headers)).status in (304, 412, 416)
        assert (await client.get("/s/f7.txt?replace")).text == "replaced"
        assert (await client.get("/s/missing")).status == 404
        assert open_fds() == before

    serve(loop, app, scenario)


def shrinking_app(path: Path, *, compress: bool = False) -> web.Application:
    """Serves `path`, truncating it after FileResponse has opened it and
    taken its size (on_response_prepare runs just before the head is sent)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.FileResponse(path, chunk_size=4096)
        if compress:
            response.enable_compression()
        return response

    async def truncate(request: web.Request, response: web.StreamResponse) -> None:
        if request.path == "/shrink":
            os.truncate(path, 1000)

    app = web.Application()
    app.router.add_get("/shrink", handler)
    app.router.add_get("/ok", lambda r: web.Response(text="ok"))
    app.on_response_prepare.append(truncate)
    return app


async def shrink_scenario(client: TestClient, compress: bool) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    encoding = "Accept-Encoding: gzip\r\n" if compress else ""
    writer.write(f"GET /shrink HTTP/1.1\r\nHost: x\r\n{encoding}\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    rest = await reader.read()  # to EOF: the server closes, it does not hang
    writer.close()
    await writer.wait_closed()
    assert head.startswith(b"HTTP/1.1 200 ")
    if compress:
        assert b"Transfer-Encoding: chunked" in head
        assert not rest.endswith(b"0\r\n\r\n")  # the chunked body was never ended
    else:
        assert b"Content-Length: 200000" in head
        assert len(rest) == 1000  # what was left of the file, then the close
    assert (await client.get("/ok")).text == "ok"  # and the server serves on


@pytest.mark.parametrize("compress", [False, True], ids=["sendfile", "compressed"])
def test_a_file_that_shrinks_while_sent_does_not_hang(
    loop: asyncio.AbstractEventLoop,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    compress: bool,
) -> None:
    path = tmp_path / "shrinking.bin"
    path.write_bytes(os.urandom(200_000))
    with caplog.at_level(logging.WARNING, logger="treadle"):
        serve(loop, shrinking_app(path, compress=compress), lambda c: shrink_scenario(c, compress))
    assert "shrank while being sent" in caplog.text


def test_the_read_and_write_path_on_uvloop(tmp_path: Path) -> None:
    # uvloop has no loop.sendfile: FileResponse reads and writes instead.
    uvloop = pytest.importorskip("uvloop")
    data = os.urandom(3 * 1024 * 1024 + 1)
    (tmp_path / "big.bin").write_bytes(data)
    shrinking = tmp_path / "shrinking.bin"
    shrinking.write_bytes(os.urandom(200_000))

    async def scenario(client: TestClient) -> None:
        resp = await client.get("/static/big.bin")
        assert (resp.status, resp.body) == (200, data)
        resp = await client.get("/static/big.bin", headers={"Range": "bytes=5-1000004"})
        assert (resp.status, resp.body) == (206, data[5:1000005])
        assert (await client.head("/static/big.bin")).headers["Content-Length"] == str(len(data))

    the_loop = uvloop.new_event_loop()
    try:
        serve(the_loop, static_app(tmp_path, chunk_size=100_000), scenario)
        serve(the_loop, shrinking_app(shrinking), lambda c: shrink_scenario(c, False))
    finally:
        the_loop.run_until_complete(the_loop.shutdown_default_executor())
        the_loop.close()


@pytest.fixture(scope="module")
def tls_contexts(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ...]:
    from tests.loop.test_tls import make_certs

    certs = make_certs(tmp_path_factory.mktemp("certs"))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(certs.cert, certs.key)
    return server, ssl.create_default_context(cafile=certs.ca)


def test_files_over_tls(
    loop: asyncio.AbstractEventLoop, tmp_path: Path, tls_contexts: tuple[ssl.SSLContext, ...]
) -> None:
    # loop.sendfile cannot be zero-copy under TLS: the loop falls back by itself.
    server_context, client_context = tls_contexts
    data = os.urandom(2 * 1024 * 1024 + 3)
    (tmp_path / "big.bin").write_bytes(data)

    async def main() -> None:
        runner = web.AppRunner(static_app(tmp_path))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context)
        await site.start()
        port = runner.addresses[0][1]
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_context, server_hostname="localhost"
        )
        try:
            for head in (b"", b"Range: bytes=10-19\r\n"):
                writer.write(b"GET /static/big.bin HTTP/1.1\r\nHost: x\r\n" + head + b"\r\n")
                resp = await read_response(reader)
                assert resp.body == (data[10:20] if head else data)
        finally:
            writer.close()
            await writer.wait_closed()
            await runner.cleanup()

    run(loop, main())


def test_a_file_opened_for_a_cancelled_request_is_closed(
    loop: asyncio.AbstractEventLoop, tmp_path: Path
) -> None:
    path = tmp_path / "f.txt"
    path.write_bytes(b"x")
    gate = threading.Event()
    opened: list[_OpenFile] = []

    def slow_open() -> _OpenFile:
        gate.wait()
        opened.append(_open_regular(path))
        return opened[0]

    async def main() -> None:
        task = asyncio.ensure_future(_off_loop(slow_open))
        await asyncio.sleep(0)  # it waits for the worker thread now
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        gate.set()
        for _ in range(10_000):  # until the thread has finished and the loop closed it
            if opened and opened[0].file.closed:
                return
            await asyncio.sleep(0.001)
        pytest.fail("the file opened for the cancelled request was left open")

    run(loop, main())


# -- ResponseWriter.sendfile (the HTTP layer) --------------------------------------------------


def test_response_writer_sendfile(loop: asyncio.AbstractEventLoop, tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"0123456789")
    misuse: list[str] = []

    async def app(request: Message, body: Body, writer: ResponseWriter) -> None:
        with open(path, "rb") as file:
            if request.path == "/chunked":
                await writer.start(200)
                try:
                    await writer.sendfile(file, 0, 10)
                except RuntimeError as exc:
                    misuse.append(str(exc))
                await writer.write_eof(b"chunked")
                return
            try:
                await writer.sendfile(file, 0, 10)
            except RuntimeError as exc:
                misuse.append(str(exc))
            await writer.start(200, content_length=12)
            try:
                await writer.sendfile(file, 0, 13)
            except RuntimeError as exc:
                misuse.append(str(exc))
            assert await writer.sendfile(file, 2, 0) == 0
            assert await writer.sendfile(file, 2, 3) == 3
            await writer.write(b"-")
            assert await writer.sendfile(file, 0, 8) == 8
            assert writer.finished is False
            await writer.write_eof()

    async def main() -> None:
        http = HTTPServer(app)
        server = await asyncio.get_running_loop().create_server(http, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            resp = await raw_request(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (resp.status, resp.body) == (200, b"234-01234567")
            head = await raw_request(port, b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (head.headers["Content-Length"], head.body) == ("12", b"")
            resp = await raw_request(port, b"GET /chunked HTTP/1.1\r\nHost: x\r\n\r\n")
            assert resp.body == b"chunked"
        finally:
            server.close()
            await server.wait_closed()

    run(loop, main())
    assert misuse == [
        "sendfile() before start()",
        "more body bytes than the content_length given to start()",
        "sendfile() before start()",
        "more body bytes than the content_length given to start()",
        "sendfile() needs a response started with a content_length",
    ]
