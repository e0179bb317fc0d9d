"""The same Starlette app gives the same responses under Treadle and uvicorn.

tests/asgi/starlette_app.py is served from one temporary folder by
`treadle run` and by `uvicorn` (its default HTTP implementation), and each
request of a corpus is sent byte for byte to both over raw sockets; the
responses are parsed with http.client and compared: the status, the header
fields as a sorted list of (lower-case name, value) pairs without Date and
Server (the order of different fields is not significant; any value that
differs is), and the body byte for byte (after removing the chunked framing,
whose chunk sizes are each server's own). Both processes run with
PYTHONHASHSEED=0, so that Starlette's `Allow` header, built from a set,
lists the methods in the same order.

The corpus covers the app's answers (errors, HEAD, queries, bodies large and
chunked, redirects, streams, static files), the scope the app is given
(`SCOPES`, echoed by /scope/...), both again under `--root-path`, and
keep-alive, pipelining and `Expect: 100-continue` on one connection. Where
Treadle answers differently on purpose, the case is kept out of the equality
and written down with the reason (`DELIBERATE`, and the tests after it).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.rawhttp import Reader, Reply, exchange
from tests.web.test_cli import DEADLINE, subprocess_env, treadle_run

HERE = Path(__file__).resolve().parent
HOST = b"Host: parity.test\r\n"
# The Host header every request carries: Starlette builds absolute URLs
# (redirects) from it, and the two servers listen on different ports.


@dataclass(frozen=True)
class Servers:
    treadle: int
    uvicorn: int


def start_uvicorn(folder: Path, *args: str) -> tuple[subprocess.Popen[bytes], int]:
    """`python -m uvicorn starlette_app:app --port 0 ARGS` in `folder`; its
    port, read from its log (a file, so that a full pipe cannot block it)."""
    log = folder / f"uvicorn-{time.monotonic_ns()}.log"
    command = [sys.executable, "-m", "uvicorn", "starlette_app:app", "--host", "127.0.0.1"]
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [*command, "--port", "0", "--no-access-log", *args],
            cwd=folder,
            env=dict(subprocess_env(), PYTHONHASHSEED="0"),
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
    end = time.monotonic() + DEADLINE
    while True:
        match = re.search(r"Uvicorn running on http://127\.0\.0\.1:(\d+)", log.read_text())
        if match:
            return proc, int(match.group(1))
        if proc.poll() is not None or time.monotonic() > end:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            pytest.fail(f"uvicorn did not start: {log.read_text()}")
        time.sleep(0.05)


@contextmanager
def serve_both(folder: Path, *args: str) -> Iterator[Servers]:
    """The app in `folder` served by Treadle and by uvicorn, with ARGS."""
    uvicorn, uvicorn_port = start_uvicorn(folder, *args)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("PYTHONHASHSEED", "0")
            running = treadle_run(folder, "starlette_app:app", "--port", "0", *args)
            treadle = running.__enter__()
        try:
            yield Servers(treadle.port, uvicorn_port)
        finally:
            running.__exit__(None, None, None)
    finally:
        with suppress(ProcessLookupError):
            os.killpg(uvicorn.pid, signal.SIGKILL)
        uvicorn.wait()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("parity")
    shutil.copy(HERE / "starlette_app.py", folder / "starlette_app.py")
    (folder / "static").mkdir()
    (folder / "static" / "style.css").write_bytes(b"body { margin: 0; }\n")
    (folder / "static" / "data.bin").write_bytes(bytes(range(256)) * 64)
    return folder


@pytest.fixture(scope="module")
def servers(folder: Path) -> Iterator[Servers]:
    with serve_both(folder, "--lifespan", "on") as both:
        yield both


@pytest.fixture(scope="module")
def rooted(folder: Path) -> Iterator[Servers]:
    """Both servers told the app is mounted at /api (--root-path)."""
    with serve_both(folder, "--root-path", "/api") as both:
        yield both


def chunked(*pieces: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


BIG = bytes(range(256)) * 8192  # 2 MiB
JSON = b'{"name": "caf\xc3\xa9", "n": [1, 2.5, null]}'

CORPUS: dict[str, tuple[str, bytes]] = {
    "path param": ("GET", b"GET /users/42 HTTP/1.1\r\n" + HOST + b"\r\n"),
    "no route (404)": ("GET", b"GET /users/abc HTTP/1.1\r\n" + HOST + b"\r\n"),
    "method not allowed (405)": (
        "PUT",
        b"PUT /items HTTP/1.1\r\n" + HOST + b"Content-Length: 2\r\n\r\n{}",
    ),
    "invalid JSON (422)": (
        "POST",
        b"POST /json HTTP/1.1\r\n" + HOST + b"Content-Length: 5\r\n\r\n{bad}",
    ),
    "JSON": (
        "POST",
        b"POST /json HTTP/1.1\r\n"
        + HOST
        + b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(JSON)
        + JSON,
    ),
    "created (201)": (
        "POST",
        b"POST /items HTTP/1.1\r\n" + HOST + b'Content-Length: 15\r\n\r\n{"name": "pen"}',
    ),
    "app raises (500)": ("GET", b"GET /fail HTTP/1.1\r\n" + HOST + b"\r\n"),
    "HTTPException (418)": ("GET", b"GET /teapot HTTP/1.1\r\n" + HOST + b"\r\n"),
    "HEAD": ("HEAD", b"HEAD /blob HTTP/1.1\r\n" + HOST + b"\r\n"),
    "HEAD of a stream": ("HEAD", b"HEAD /numbers HTTP/1.1\r\n" + HOST + b"\r\n"),
    "HEAD of a static file": ("HEAD", b"HEAD /static/style.css HTTP/1.1\r\n" + HOST + b"\r\n"),
    "bad query value (400)": ("GET", b"GET /search?limit=ten HTTP/1.1\r\n" + HOST + b"\r\n"),
    "malformed percent escapes": (
        "GET",
        b"GET /search?q=%zz&tag=%E9&tag=%C3%A9 HTTP/1.1\r\n" + HOST + b"\r\n",
    ),
    "query": (
        "GET",
        b"GET /search?q=caf%C3%A9+cr%C3%A8me&tag=a&tag=b&limit=3 HTTP/1.1\r\n" + HOST + b"\r\n",
    ),
    "empty query values": ("GET", b"GET /search?q=&tag=&&limit= HTTP/1.1\r\n" + HOST + b"\r\n"),
    "large body (2 MiB)": (
        "POST",
        b"POST /digest HTTP/1.1\r\n" + HOST + b"Content-Length: %d\r\n\r\n" % len(BIG) + BIG,
    ),
    "chunked request body": (
        "POST",
        b"POST /digest HTTP/1.1\r\n"
        + HOST
        + b"Transfer-Encoding: chunked\r\n\r\n"
        + chunked(b"a" * 10, BIG[:70_000], b"z"),
    ),
    "unicode path (percent-encoded)": (
        "GET",
        b"GET /hello/%C3%A9t%C3%A9%20%F0%9F%8C%9E HTTP/1.1\r\n" + HOST + b"\r\n",
    ),
    "encoded slash in a path param": ("GET", b"GET /hello/a%2Fb HTTP/1.1\r\n" + HOST + b"\r\n"),
    "redirect_slashes": ("GET", b"GET /slash?keep=1 HTTP/1.1\r\n" + HOST + b"\r\n"),
    "the slashed route": ("GET", b"GET /slash/ HTTP/1.1\r\n" + HOST + b"\r\n"),
    "redirect (302)": ("GET", b"GET /elsewhere HTTP/1.1\r\n" + HOST + b"\r\n"),
    "streaming response": ("GET", b"GET /numbers?count=40 HTTP/1.1\r\n" + HOST + b"\r\n"),
    "HTTP/1.0 request": ("GET", b"GET /users/1 HTTP/1.0\r\n\r\n"),
    "Connection: close": (
        "GET",
        b"GET /users/5 HTTP/1.1\r\n" + HOST + b"Connection: close\r\n\r\n",
    ),
    "absolute-form target": (
        "GET",
        b"GET http://parity.test/users/5 HTTP/1.1\r\n" + HOST + b"\r\n",
    ),
    "static file": ("GET", b"GET /static/style.css HTTP/1.1\r\n" + HOST + b"\r\n"),
    "static file, not modified": (
        "GET",
        b"GET /static/style.css HTTP/1.1\r\n"
        + HOST
        + b"If-Modified-Since: Fri, 01 Jan 2100 00:00:00 GMT\r\n\r\n",
    ),
    "static range": (
        "GET",
        b"GET /static/data.bin HTTP/1.1\r\n" + HOST + b"Range: bytes=1000-1099\r\n\r\n",
    ),
    "static range not satisfiable": (
        "GET",
        b"GET /static/data.bin HTTP/1.1\r\n" + HOST + b"Range: bytes=99999-\r\n\r\n",
    ),
    "static file missing": ("GET", b"GET /static/nope.css HTTP/1.1\r\n" + HOST + b"\r\n"),
    "static traversal": (
        "GET",
        b"GET /static/%2e%2e/starlette_app.py HTTP/1.1\r\n" + HOST + b"\r\n",
    ),
    "repeated set-cookie": ("GET", b"GET /cookies HTTP/1.1\r\n" + HOST + b"\r\n"),
    "OPTIONS *": ("OPTIONS", b"OPTIONS * HTTP/1.1\r\n" + HOST + b"\r\n"),
    "double slash": ("GET", b"GET //users/5 HTTP/1.1\r\n" + HOST + b"\r\n"),
}


@pytest.mark.parametrize("name", list(CORPUS))
def test_same_response(servers: Servers, name: str) -> None:
    method, raw = CORPUS[name]
    treadle = exchange(servers.treadle, raw, method)
    uvicorn = exchange(servers.uvicorn, raw, method)
    assert treadle == uvicorn


# Requests to /scope/..., whose answer is what the server put in the scope
# (path, raw_path, query_string, headers, http_version, root_path...): the
# app must see the same request from both servers.
SCOPES: dict[str, tuple[str, bytes]] = {
    "plain": ("GET", b"GET /scope/plain HTTP/1.1\r\n" + HOST + b"\r\n"),
    "escapes in the path": ("GET", b"GET /scope/a%2Fb%25c%20d HTTP/1.1\r\n" + HOST + b"\r\n"),
    "UTF-8 and latin-1 escapes": (
        "GET",
        b"GET /scope/%C3%A9/%e9 HTTP/1.1\r\n" + HOST + b"\r\n",
    ),
    "query": ("GET", b"GET /scope/x?a=1&b=%20+c&d=?e HTTP/1.1\r\n" + HOST + b"\r\n"),
    "empty query": ("GET", b"GET /scope/x? HTTP/1.1\r\n" + HOST + b"\r\n"),
    "NUL escaped in the query": ("GET", b"GET /scope/q?%00=x HTTP/1.1\r\n" + HOST + b"\r\n"),
    "dot segments": ("GET", b"GET /scope/dot/../seg/./x HTTP/1.1\r\n" + HOST + b"\r\n"),
    "semicolon": ("GET", b"GET /scope/semi;p=1 HTTP/1.1\r\n" + HOST + b"\r\n"),
    "absolute form": (
        "GET",
        b"GET http://parity.test/scope/abs?q=1 HTTP/1.1\r\n" + HOST + b"\r\n",
    ),
    "absolute form, another host": (
        "GET",
        b"GET http://other.test:81/scope/abs HTTP/1.1\r\n" + HOST + b"\r\n",
    ),
    "headers": (
        "GET",
        b"GET /scope/h HTTP/1.1\r\n"
        + HOST
        + b"X-A: 1\r\nx-a: 2\r\nX-Empty:\r\nX-Sp:   padded   \r\n"
        + b"Cookie: a=1\r\nCookie: b=2\r\nUser-Agent: parity/1\r\n\r\n",
    ),
    "host with a port": ("GET", b"GET /scope/p HTTP/1.1\r\nHost: parity.test:8080\r\n\r\n"),
    "HTTP/1.0": ("GET", b"GET /scope/old HTTP/1.0\r\n" + HOST + b"\r\n"),
    "DELETE with a body": (
        "DELETE",
        b"DELETE /scope/d HTTP/1.1\r\n" + HOST + b"Content-Length: 4\r\n\r\ngone",
    ),
    "chunked with an extension": (
        "POST",
        b"POST /scope/c HTTP/1.1\r\n"
        + HOST
        + b"Transfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
    ),
}


@pytest.mark.parametrize("name", list(SCOPES))
def test_same_scope(servers: Servers, name: str) -> None:
    method, raw = SCOPES[name]
    treadle = exchange(servers.treadle, raw, method)
    uvicorn = exchange(servers.uvicorn, raw, method)
    assert treadle[0] == 200
    assert treadle == uvicorn


@pytest.mark.parametrize("name", ["plain", "escapes in the path", "query", "absolute form"])
def test_same_scope_under_a_root_path(rooted: Servers, name: str) -> None:
    method, raw = SCOPES[name]
    treadle = exchange(rooted.treadle, raw, method)
    uvicorn = exchange(rooted.uvicorn, raw, method)
    assert treadle[0] == 200
    assert b'"root_path":"/api"' in treadle[2]
    assert treadle == uvicorn


@pytest.mark.parametrize("name", ["redirect_slashes", "path param", "static file"])
def test_same_response_under_a_root_path(rooted: Servers, name: str) -> None:
    method, raw = CORPUS[name]
    assert exchange(rooted.treadle, raw, method) == exchange(rooted.uvicorn, raw, method)


def test_request_trailers_stay_out_of_the_scope(servers: Servers) -> None:
    # A deliberate difference: ASGI has no request trailers. Treadle drops
    # them; uvicorn (httptools) appends them to scope["headers"], the list
    # the app got with the head, while the app may already be reading it.
    raw = (
        b"POST /scope/t HTTP/1.1\r\n"
        + HOST
        + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    status, _, body = exchange(servers.treadle, raw, "POST")
    assert status == 200
    assert b'"headers":[["host","parity.test"],["transfer-encoding","chunked"]]' in body
    assert b'"body":"abc"' in body


def test_same_responses_on_one_keep_alive_connection(servers: Servers) -> None:
    # One connection each, request after request (the body of each read in
    # full before the next is sent), ending with the app's 500: Starlette
    # raises after sending it, and both servers then close the connection.
    sequence = [
        "path param",
        "chunked request body",
        "HEAD",
        "streaming response",
        "invalid JSON (422)",
        "method not allowed (405)",
        "static file, not modified",
        "large body (2 MiB)",
        "redirect_slashes",
        "app raises (500)",
    ]

    def replies(port: int) -> tuple[list[Reply], bytes]:
        with socket.create_connection(("127.0.0.1", port), DEADLINE) as sock:
            reader = Reader(sock)
            got = []
            for name in sequence:
                method, raw = CORPUS[name]
                sock.sendall(raw)
                got.append(reader.reply(method))
            return got, reader.read(1)  # b"": the server closed

    treadle, treadle_end = replies(servers.treadle)
    uvicorn, uvicorn_end = replies(servers.uvicorn)
    assert treadle == uvicorn
    assert treadle_end == uvicorn_end == b""


def test_same_responses_pipelined(servers: Servers) -> None:
    names = ["path param", "JSON", "streaming response", "HEAD", "query"]

    def replies(port: int) -> list[Reply]:
        with socket.create_connection(("127.0.0.1", port), DEADLINE) as sock:
            sock.sendall(b"".join(CORPUS[name][1] for name in names))
            reader = Reader(sock)
            return [reader.reply(CORPUS[name][0]) for name in names]

    assert replies(servers.treadle) == replies(servers.uvicorn)


def test_same_expect_continue(servers: Servers) -> None:
    # The client waits for 100 Continue before sending the body, as curl does.
    def reply(port: int) -> tuple[bytes, Reply]:
        with socket.create_connection(("127.0.0.1", port), DEADLINE) as sock:
            sock.sendall(
                b"POST /json HTTP/1.1\r\n"
                + HOST
                + b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(JSON)
            )
            interim = b""
            while not interim.endswith(b"\r\n\r\n"):
                byte = sock.recv(1)
                assert byte, "closed before 100 Continue"
                interim += byte
            sock.sendall(JSON)
            return interim.split(b" ", 2)[1], Reader(sock).reply("POST")

    assert reply(servers.treadle) == reply(servers.uvicorn)
    assert reply(servers.treadle)[0] == b"100"


# Where Treadle answers differently on purpose. Each entry: the request, and
# why. These requests are refused by Treadle's parser before the app runs.
DELIBERATE: dict[str, tuple[bytes, str]] = {
    "no Host header": (
        b"GET /users/5 HTTP/1.1\r\n\r\n",
        "RFC 9112 section 3.2: a server MUST answer 400 to an HTTP/1.1 request "
        "without Host; uvicorn serves it (200)",
    ),
    "Content-Length and Transfer-Encoding": (
        b"POST /digest HTTP/1.1\r\n"
        + HOST
        + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "both refuse (400); the body is each server's own message",
    ),
    "space before the colon": (
        b"GET /users/5 HTTP/1.1\r\n" + HOST + b"X-Bad : 1\r\n\r\n",
        "both refuse (400); the body is each server's own message",
    ),
    "obs-fold": (
        b"GET /users/5 HTTP/1.1\r\n" + HOST + b"X-Fold: a\r\n b\r\n\r\n",
        "both refuse (400); the body is each server's own message",
    ),
    "bare LF": (
        b"GET /users/5 HTTP/1.1\nHost: parity.test\n\n",
        "both refuse (400); the body is each server's own message",
    ),
    "raw UTF-8 in the target": (
        "GET /hello/été HTTP/1.1\r\n".encode() + HOST + b"\r\n",
        "both refuse (400); the body is each server's own message",
    ),
}


@pytest.mark.parametrize("name", list(DELIBERATE))
def test_treadle_refuses_on_purpose(servers: Servers, name: str) -> None:
    raw, _why = DELIBERATE[name]
    status, fields, body = exchange(servers.treadle, raw, "GET")
    assert status == 400
    assert ("connection", "close") in fields
    assert body.startswith(b"400 Bad Request: ")
    uvicorn_status = exchange(servers.uvicorn, raw, "GET")[0]
    if name != "no Host header":
        assert uvicorn_status == 400


def test_http_1_0_streaming_is_framed_by_close(servers: Servers) -> None:
    # A deliberate difference: to an HTTP/1.0 client Treadle frames a stream
    # by closing the connection, as RFC 9112 section 6.1 requires (chunked is
    # HTTP/1.1 only); uvicorn (httptools) sends it chunked. The rest is the same.
    raw = b"GET /numbers?count=3 HTTP/1.0\r\n" + HOST + b"\r\n"
    treadle = exchange(servers.treadle, raw, "GET")
    uvicorn = exchange(servers.uvicorn, raw, "GET")
    assert ("transfer-encoding", "chunked") not in treadle[1]
    assert ("connection", "close") in treadle[1]
    assert treadle[2] == b"line 0\nline 1\nline 2\n"
    without_framing = [f for f in uvicorn[1] if f[0] != "transfer-encoding"]
    assert (treadle[0], treadle[1], treadle[2]) == (uvicorn[0], without_framing, uvicorn[2])


@pytest.fixture(scope="module")
def proxied(folder: Path) -> Iterator[Servers]:
    """Both servers told to believe forwarding headers from 127.0.0.1."""
    with serve_both(folder, "--proxy-headers", "--forwarded-allow-ips", "127.0.0.1") as both:
        yield both


FORWARDED = (
    b"GET /slash HTTP/1.1\r\n"
    + HOST
    + b"X-Forwarded-Proto: https\r\nX-Forwarded-For: 203.0.113.7\r\n\r\n"
)


def test_behind_a_tls_proxy(proxied: Servers) -> None:
    # Behind nginx on the same host, which ends TLS: with the proxy trusted,
    # Starlette's redirect_slashes keeps the browser on https:// under both.
    uvicorn = exchange(proxied.uvicorn, FORWARDED, "GET")
    assert ("location", "https://parity.test/slash/") in uvicorn[1]
    assert exchange(proxied.treadle, FORWARDED, "GET") == uvicorn


def test_forwarding_headers_are_not_believed_by_default(servers: Servers) -> None:
    # A deliberate difference: uvicorn believes 127.0.0.1 unless told otherwise;
    # Treadle believes no peer until --forwarded-allow-ips names one (a local
    # process that is not a proxy could otherwise claim any client address).
    assert ("location", "http://parity.test/slash/") in exchange(servers.treadle, FORWARDED, "GET")[
        1
    ]
    assert ("location", "https://parity.test/slash/") in exchange(
        servers.uvicorn, FORWARDED, "GET"
    )[1]
