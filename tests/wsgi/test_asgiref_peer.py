"""asgiref as a peer: a Flask app served by Treadle's WSGI interface, and the
same app wrapped in `asgiref.wsgi.WsgiToAsgi` served by Treadle's ASGI
interface, answer a corpus of raw requests the same.

This checks Treadle's WSGI adapter against asgiref's reading of PEP 3333 (the
environ the app sees, how its response is sent), and Treadle's ASGI server
against asgiref's ASGI. Both run in-process on the same loop, for each loop
(the `loop` fixture); the requests go over real sockets from a thread, and
the responses are compared as in tests/asgi/test_uvicorn_parity.py: status,
the header fields less Date as sorted pairs, the body byte for byte.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from asgiref.wsgi import WsgiToAsgi

from tests.conftest import run
from tests.rawhttp import Reply, exchange
from tests.wsgi.flask_app import create_app
from tests.wsgi.test_flask import REPORT, app_folder
from treadle.asgi import ASGIRunner
from treadle.http.runner import ServerRunner, TCPSite
from treadle.wsgi import WSGIApp, WSGIRunner

HOST = b"Host: peer.test\r\n"
UPLOAD = os.urandom(300_000)
BOUNDARY = b"treadle-peer-boundary"


def multipart() -> bytes:
    return (
        b"--" + BOUNDARY + b"\r\n"
        b'Content-Disposition: form-data; name="comment"\r\n\r\n'
        b"caf\xc3\xa9\r\n"
        b"--" + BOUNDARY + b"\r\n"
        b'Content-Disposition: form-data; name="file"; filename="data.bin"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n" + UPLOAD + b"\r\n"
        b"--" + BOUNDARY + b"--\r\n"
    )


def post(target: bytes, body: bytes, content_type: bytes) -> tuple[str, bytes]:
    head = b"POST " + target + b" HTTP/1.1\r\n" + HOST
    head += b"Content-Type: " + content_type + b"\r\nContent-Length: %d\r\n\r\n" % len(body)
    return "POST", head + body


def get(target: bytes, *fields: bytes, method: bytes = b"GET") -> tuple[str, bytes]:
    return method.decode(), method + b" " + target + b" HTTP/1.1\r\n" + HOST + b"".join(
        field + b"\r\n" for field in fields
    ) + b"\r\n"


CORPUS: dict[str, tuple[str, bytes]] = {
    "index": get(b"/"),
    "unicode path": get(b"/hello/%C3%A9milie%20%F0%9F%8C%9E"),
    "query": get(b"/search?q=caf%C3%A9+cr%C3%A8me&tag=a&tag=b"),
    "environ": get(b"/environ?x=1&y=%20"),
    "environ, escaped slash": get(b"/environ/a%2Fb"),
    "form": post(
        b"/form", b"name=Zo%C3%AB&colour=red&colour=blue", b"application/x-www-form-urlencoded"
    ),
    "form missing a field (400)": post(
        b"/form", b"colour=red", b"application/x-www-form-urlencoded"
    ),
    "JSON": post(b"/json", b'{"b": [1, null], "a": "\xc3\xa9"}', b"application/json"),
    "bad JSON (400)": post(b"/json", b"{broken", b"application/json"),
    "generator stream": get(b"/stream?count=30"),
    "multipart upload": post(b"/upload", multipart(), b"multipart/form-data; boundary=" + BOUNDARY),
    "body with length": post(b"/digest", UPLOAD, b"application/octet-stream"),
    "abort(404)": get(b"/missing/3"),
    "no route (404)": get(b"/no/such/page"),
    "method not allowed (405)": get(b"/", b"Content-Length: 0", method=b"POST"),
    "unhandled exception (500)": get(b"/boom"),
    "send_file": get(b"/files/report.bin"),
    "send_file HEAD": get(b"/files/report.bin", method=b"HEAD"),
    "send_file Range": get(b"/files/report.bin", b"Range: bytes=5000-5999"),
    "send_file not modified": get(
        b"/files/report.bin", b"If-Modified-Since: Fri, 01 Jan 2100 00:00:00 GMT"
    ),
    "send_file empty": get(b"/files/empty.txt"),
    "attachment": get(b"/attachment"),
    "cookies": get(b"/cookies"),
    "redirect": get(b"/redirect"),
    "HTTP/1.0": ("GET", b"GET /hello/old HTTP/1.0\r\n\r\n"),
    "HEAD of a route": get(b"/hello/head", method=b"HEAD"),
}
CASES = [
    *(name for name in CORPUS if name != "send_file Range"),
    "send_file Range",
    "file_wrapper with a shorter Content-Length",
]
CORPUS["file_wrapper with a shorter Content-Length"] = get(b"/head-of/report.bin?bytes=1000")


def closing(app: WSGIApp) -> WSGIApp:
    """`app`, with its iterable's close() called when the iteration ends.

    asgiref's WsgiToAsgi never calls close(), which PEP 3333 requires of the
    server (django/asgiref pull request 587, open): the file Werkzeug opens
    for send_file would be left to the garbage collector, which warns. The
    generator below is closed when asgiref drops it, and closes the app's."""

    def wrapped(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        result = app(environ, start_response)
        try:
            yield from result
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()

    return wrapped


async def start(runner: ServerRunner) -> int:
    await runner.setup()
    site = TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return int(site.name.rsplit(":", 1)[1])


def serve_both(
    loop: asyncio.AbstractEventLoop, folder: Path, requests: list[tuple[str, bytes]]
) -> list[tuple[Reply, Reply]]:
    """Each request's reply from the WSGI interface and from WsgiToAsgi."""
    app = create_app(folder)

    async def main() -> list[tuple[Reply, Reply]]:
        wsgi = WSGIRunner(app, threads=4)
        asgi = ASGIRunner(WsgiToAsgi(closing(app)), lifespan="off")
        try:
            wsgi_port = await start(wsgi)
            asgi_port = await start(asgi)
            replies = []
            for method, raw in requests:
                # A blocking client, in a thread: the servers run on this loop.
                direct = await loop.run_in_executor(None, exchange, wsgi_port, raw, method)
                peer = await loop.run_in_executor(None, exchange, asgi_port, raw, method)
                replies.append((direct, peer))
            return replies
        finally:
            await asgi.cleanup()
            await wsgi.cleanup()

    return run(loop, main())


@pytest.mark.parametrize("name", CASES)
def test_same_as_through_asgiref(
    loop: asyncio.AbstractEventLoop, tmp_path: Path, name: str
) -> None:
    [(direct, peer)] = serve_both(loop, app_folder(tmp_path), [CORPUS[name]])
    assert direct == peer


def test_the_corpus_means_something(loop: asyncio.AbstractEventLoop, tmp_path: Path) -> None:
    # The comparison above is only worth what the answers are: check a few.
    names = ["send_file", "multipart upload", "environ, escaped slash", "generator stream"]
    replies = serve_both(loop, app_folder(tmp_path), [CORPUS[name] for name in names])
    (send_file, _), (upload, _), (environ, _), (stream, _) = replies
    assert send_file[0] == 200
    assert send_file[2] == REPORT
    assert ("content-length", str(len(REPORT))) in send_file[1]
    assert upload[0] == 200
    assert hashlib.sha256(UPLOAD).hexdigest().encode() in upload[2]
    assert b'"PATH_INFO":"/environ/a/b"' in environ[2]
    assert ("transfer-encoding", "chunked") in stream[1]
    assert stream[2] == b"".join(f"row {n}\n".encode() for n in range(30))


def test_chunked_body_reaches_the_app_only_directly(
    loop: asyncio.AbstractEventLoop, tmp_path: Path
) -> None:
    # A deliberate difference. A chunked body has no CONTENT_LENGTH; Treadle
    # sets wsgi.input_terminated, so Werkzeug reads wsgi.input to its end.
    # asgiref sets neither, and Werkzeug then reads nothing, as PEP 3333
    # asks of a body of unknown length.
    data = UPLOAD[:50_000]
    raw = (
        b"POST /digest HTTP/1.1\r\n"
        + HOST
        + b"Transfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n" % len(data)
        + data
        + b"\r\n0\r\n\r\n"
    )
    [(direct, peer)] = serve_both(loop, app_folder(tmp_path), [("POST", raw)])
    assert direct[0] == peer[0] == 200
    assert b'"size":50000' in direct[2]
    assert hashlib.sha256(data).hexdigest().encode() in direct[2]
    assert b'"size":0' in peer[2]
