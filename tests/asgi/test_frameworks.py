"""Starlette and FastAPI apps nobody here wrote, served by Treadle as a user would.

Each app (tests/asgi/starlette_app.py, fastapi_app.py) is copied into a
temporary folder and started with `python -m treadle run module:app --port 0`
(the `treadle_run` helper of tests/web/test_cli.py), and the tests talk to it
over real sockets: httpx for HTTP, the `websockets` library for WebSockets.
`treadle run` always serves on Treadle's loop, so the last tests also run the
Starlette app in-process with `ASGIRunner` on both loops (the `loop` fixture).
Waits are bounded by DEADLINE; nothing depends on timing.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path

import aiohttp
import httpx
import pytest
import websockets.exceptions
from websockets.sync.client import connect

from tests.asgi.starlette_app import make_app
from tests.conftest import run
from tests.web.test_cli import (
    DEADLINE,
    Running,
    contents,
    lines,
    subprocess_env,
    treadle_run,
    wait_for,
)
from treadle.asgi import ASGIRunner
from treadle.http.runner import TCPSite

HERE = Path(__file__).resolve().parent
STYLE = b"body { color: #222; }\n"
# Seconds to wait for news of a client that has gone: generous for a local
# close, and shorter than DEADLINE, as it bounds an expected failure.
DISCONNECT_BOUND = 10.0


@dataclass
class Served:
    """A `treadle run` process serving an app from `folder`."""

    running: Running
    folder: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.running.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.running.port}"

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=DEADLINE)


def app_folder(folder: Path, module: str) -> Path:
    """`folder` holding a copy of tests/asgi/`module`.py and its static files."""
    shutil.copy(HERE / f"{module}.py", folder / f"{module}.py")
    static = folder / "static"
    static.mkdir()
    (static / "style.css").write_bytes(STYLE)
    (static / "data.bin").write_bytes(bytes(range(256)) * 64)
    return folder


@pytest.fixture(scope="module")
def starlette(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = app_folder(tmp_path_factory.mktemp("starlette"), "starlette_app")
    with treadle_run(folder, "starlette_app:app", "--port", "0") as running:
        yield Served(running, folder)


@pytest.fixture(scope="module")
def fastapi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = app_folder(tmp_path_factory.mktemp("fastapi"), "fastapi_app")
    with treadle_run(folder, "fastapi_app:app", "--port", "0") as running:
        yield Served(running, folder)


# -- Starlette ------------------------------------------------------------------------


def test_starlette_routing_with_path_and_query_params(starlette: Served) -> None:
    with starlette.client() as client:
        response = client.get("/users/42")
        assert response.status_code == 200
        assert response.json() == {"id": 42, "type": "int"}
        # The int convertor does not match: no route.
        assert client.get("/users/forty-two").status_code == 404
        # A percent-encoded UTF-8 path segment reaches the app decoded.
        response = client.get("/hello/%C3%A9t%C3%A9%20bleu")
        assert response.text == "hello, été bleu!"
        response = client.get("/search", params=[("q", "a b&c"), ("tag", "x"), ("tag", "y")])
        assert response.json() == {"q": "a b&c", "tags": ["x", "y"], "limit": 10}
        response = client.get("/search?limit=ten")
        assert response.status_code == 400
        assert response.json() == {"error": "limit must be a number, not 'ten'"}


def test_starlette_json_in_and_out(starlette: Served) -> None:
    document = {"name": "Ωmega", "values": [1, 2.5, None, True], "nested": {"k": "v"}}
    with starlette.client() as client:
        response = client.post("/json", json=document)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {"got": document}
        response = client.post("/json", content=b"{not json", headers={"content-type": "x"})
        assert response.status_code == 422
        assert response.json()["detail"].startswith("invalid JSON")


def test_starlette_request_body_streamed_and_chunked(starlette: Served) -> None:
    payload = os.urandom(300_000)

    def pieces() -> Iterator[bytes]:
        for start in range(0, len(payload), 7_000):
            yield payload[start : start + 7_000]

    expected = {"size": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}
    with starlette.client() as client:
        assert client.post("/digest", content=payload).json() == expected
        # A generator body goes out chunked (no Content-Length).
        assert client.post("/digest", content=pieces()).json() == expected


def test_starlette_streaming_response(starlette: Served) -> None:
    with starlette.client() as client, client.stream("GET", "/numbers?count=50") as response:
        assert response.status_code == 200
        assert response.headers["transfer-encoding"] == "chunked"
        assert "content-length" not in response.headers
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
        body = b"".join(response.iter_raw())
    assert body == b"".join(f"line {n}\n".encode() for n in range(50))


def test_starlette_stream_that_breaks_is_not_complete(starlette: Served) -> None:
    # The head and two chunks are out when the app raises: the client must
    # see a truncated body (no last chunk), not a complete one.
    with starlette.client() as client, client.stream("GET", "/broken-stream") as response:
        assert response.status_code == 200
        received = []
        with pytest.raises(httpx.RemoteProtocolError):
            for piece in response.iter_raw():
                received.append(piece)
    assert b"".join(received) == b"the first row\nthe second row\n"


def test_starlette_background_task_runs_after_the_response(starlette: Served) -> None:
    log = starlette.folder / "background.log"
    with starlette.client() as client:
        response = client.post("/background?token=t1")
        # The whole response arrived while the task cannot finish (no `release`).
        assert response.status_code == 200
        assert response.text == "accepted t1"
        wait_for(lambda: "started t1" in lines(log), "the background task to start")
        assert "finished t1" not in lines(log)
        (starlette.folder / "release").touch()
        wait_for(lambda: "finished t1" in lines(log), "the background task to finish")
        # The connection is still good for the next request.
        assert client.get("/users/1").status_code == 200


def test_starlette_static_files(starlette: Served) -> None:
    with starlette.client() as client:
        response = client.get("/static/style.css")
        assert response.status_code == 200
        assert response.content == STYLE
        assert response.headers["content-length"] == str(len(STYLE))
        assert response.headers["content-type"].startswith("text/css")
        etag = response.headers["etag"]
        modified = response.headers["last-modified"]

        response = client.get("/static/style.css", headers={"If-None-Match": etag})
        assert response.status_code == 304
        assert response.content == b""
        response = client.get("/static/style.css", headers={"If-Modified-Since": modified})
        assert response.status_code == 304
        assert response.content == b""
        # An older date is not a match: the file again.
        old = formatdate(0, usegmt=True)
        response = client.get("/static/style.css", headers={"If-Modified-Since": old})
        assert response.status_code == 200
        assert response.content == STYLE

        response = client.head("/static/data.bin")
        assert response.status_code == 200
        assert response.headers["content-length"] == str(256 * 64)
        assert response.content == b""
        response = client.get("/static/data.bin")
        assert response.content == bytes(range(256)) * 64

        response = client.get("/static/nothing-here.txt")
        assert response.status_code == 404
        assert response.text == "Not Found"
        # Out of the folder: refused, not served.
        assert client.get("/static/../starlette_app.py").status_code == 404
        assert client.get("/static/%2e%2e/starlette_app.py").status_code == 404


def test_starlette_websocket_echo_and_close(starlette: Served) -> None:
    with connect(
        f"{starlette.ws_url}/ws", subprotocols=["chat", "echo.v1"], open_timeout=DEADLINE
    ) as ws:
        assert ws.subprotocol == "echo.v1"
        ws.send("hello")
        assert ws.recv(timeout=DEADLINE) == "echo: hello"
        ws.send(b"\x00\x01\xff")
        assert ws.recv(timeout=DEADLINE) == b"echo: \x00\x01\xff"
        ws.send("é" * 70_000)  # larger than one frame's 16-bit length
        assert ws.recv(timeout=DEADLINE) == "echo: " + "é" * 70_000
        ws.send("close-me")
        with pytest.raises(websockets.exceptions.ConnectionClosed):
            ws.recv(timeout=DEADLINE)
        assert ws.close_code == 4001
        assert ws.close_reason == "closing as asked"


def test_starlette_websocket_without_subprotocol(starlette: Served) -> None:
    with connect(f"{starlette.ws_url}/ws", open_timeout=DEADLINE) as ws:
        assert ws.subprotocol is None
        ws.send("plain")
        assert ws.recv(timeout=DEADLINE) == "echo: plain"
    # The client closed: the server answered its close.
    assert ws.close_code == 1000


def test_starlette_websocket_denial_response(starlette: Served) -> None:
    # An HTTPException before accept becomes a real HTTP response
    # (websocket.http.response), status, headers and body.
    with pytest.raises(websockets.exceptions.InvalidStatus) as info:
        connect(f"{starlette.ws_url}/ws-denied", open_timeout=DEADLINE)
    response = info.value.response
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.body == b"who are you?"


def test_starlette_websocket_closed_before_accept_is_403(starlette: Served) -> None:
    with pytest.raises(websockets.exceptions.InvalidStatus) as info:
        connect(f"{starlette.ws_url}/ws-refused", open_timeout=DEADLINE)
    assert info.value.response.status_code == 403
    # No route at all: Starlette closes before accepting, also a 403.
    with pytest.raises(websockets.exceptions.InvalidStatus) as info:
        connect(f"{starlette.ws_url}/no-such-socket", open_timeout=DEADLINE)
    assert info.value.response.status_code == 403


def test_starlette_lifespan_state(starlette: Served) -> None:
    with starlette.client() as client:
        assert client.get("/state").json() == {
            "greeting": "hello from the lifespan",
            "started_in": starlette.running.proc.pid,
        }
    with connect(f"{starlette.ws_url}/ws-state", open_timeout=DEADLINE) as ws:
        assert ws.recv(timeout=DEADLINE) == "hello from the lifespan"


def test_starlette_errors(starlette: Served) -> None:
    with starlette.client() as client:
        response = client.get("/fail")
        assert response.status_code == 500
        assert response.text == "Internal Server Error"
    # Starlette sends its 500 and then raises: the server closes that
    # connection (as uvicorn does), so the next requests go on a new one.
    with starlette.client() as client:
        response = client.get("/teapot")
        assert response.status_code == 418
        assert response.text == "I'm a teapot, not a coffee pot"
        response = client.put("/items")
        assert response.status_code == 405
        assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD", "POST"}
        response = client.get("/slash", follow_redirects=False)
        assert response.status_code == 307
        assert response.headers["location"] == f"{starlette.url}/slash/"
    # The server logs the app's exception with its traceback (once the
    # response is out, so it may come a little later), and goes on.
    wait_for(lambda: "RuntimeError: the handler failed" in starlette.running.stderr, "the log")
    with starlette.client() as client:
        assert client.get("/users/7").json() == {"id": 7, "type": "int"}


def test_starlette_large_static_file(starlette: Served) -> None:
    # FileResponse goes out with http.response.pathsend (sendfile).
    data = os.urandom(3 * 1024 * 1024 + 7)
    (starlette.folder / "static" / "large.bin").write_bytes(data)
    with starlette.client() as client:
        response = client.get("/static/large.bin")
        assert response.status_code == 200
        assert response.headers["content-length"] == str(len(data))
        assert response.content == data
        # And the connection is still in step.
        assert client.get("/static/style.css").content == STYLE


def test_starlette_range_requests(starlette: Served) -> None:
    data = bytes(range(256)) * 64
    with starlette.client() as client:
        response = client.get("/static/data.bin", headers={"Range": "bytes=100-355"})
        assert response.status_code == 206
        assert response.headers["content-range"] == f"bytes 100-355/{len(data)}"
        assert response.headers["content-length"] == "256"
        assert response.content == data[100:356]
        response = client.get("/static/data.bin", headers={"Range": "bytes=0-1,10-11"})
        assert response.status_code == 206
        assert response.headers["content-type"].startswith("multipart/byteranges; boundary=")
        assert response.headers["content-length"] == str(len(response.content))
        response = client.get("/static/data.bin", headers={"Range": "bytes=99999-"})
        assert response.status_code == 416


def test_starlette_cookies_and_repeated_headers(starlette: Served) -> None:
    with starlette.client() as client:
        response = client.get("/cookies")
        assert response.headers.get_list("set-cookie") == [
            "session=abc123; HttpOnly; Path=/; SameSite=strict",
            "theme=dark; Max-Age=3600; Path=/; SameSite=lax",
        ]
        assert response.headers.get_list("x-multi") == ["one", "two"]
        assert client.cookies["session"] == "abc123"


def test_starlette_multipart_upload(starlette: Served) -> None:
    data = os.urandom(400_000)
    with starlette.client() as client:
        response = client.post(
            "/upload",
            files={"file": ("report.pdf", data, "application/pdf")},
            data={"comment": "the report, été"},
        )
    assert response.status_code == 200
    assert response.json() == {
        "filename": "report.pdf",
        "content_type": "application/pdf",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "comment": "the report, été",
    }


def test_starlette_endless_stream_ends_when_the_client_goes(starlette: Served) -> None:
    log = starlette.folder / "events.log"
    before = lines(log).count("ticker stopped")
    with socket.create_connection(("127.0.0.1", starlette.running.port), DEADLINE) as sock:
        sock.sendall(b"GET /ticker HTTP/1.1\r\nHost: test\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 200 OK\r\n")
    # The generator was closed: send() told the app the client had gone.
    wait_for(lambda: lines(log).count("ticker stopped") > before, "the stream to stop")
    # And the server goes on.
    with starlette.client() as client:
        assert client.get("/users/2").status_code == 200


def test_starlette_client_leaving_a_stream_is_not_logged_as_an_error(tmp_path: Path) -> None:
    folder = app_folder(tmp_path, "starlette_app")
    with treadle_run(folder, "starlette_app:app", "--port", "0") as running:
        with socket.create_connection(("127.0.0.1", running.port), DEADLINE) as sock:
            sock.sendall(b"GET /ticker HTTP/1.1\r\nHost: test\r\n\r\n")
            assert sock.recv(100).startswith(b"HTTP/1.1 200 OK\r\n")
        wait_for(lambda: "ticker stopped" in lines(folder / "events.log"), "the stream to stop")
        # Whatever the server was to log about it, it has logged once the
        # next request on the same worker has been answered.
        with httpx.Client(timeout=DEADLINE) as client:
            assert client.get(f"http://127.0.0.1:{running.port}/pid").status_code == 200
        assert running.stop() == 0
        # A client going away is not the app failing: uvicorn logs nothing.
        assert "ClientDisconnect" not in running.stderr
        assert "Traceback" not in running.stderr


def reset(sock: socket.socket) -> None:
    """Close `sock` with a TCP reset (SO_LINGER 0), not a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_starlette_long_poll_sees_the_disconnect(starlette: Served) -> None:
    # Starlette's request.is_disconnected() calls receive() in a cancelled
    # scope; the handler then waits on receive() for the client to leave.
    log = starlette.folder / "events.log"
    sock = socket.create_connection(("127.0.0.1", starlette.running.port), DEADLINE)
    try:
        sock.sendall(b"GET /watch HTTP/1.1\r\nHost: test\r\n\r\n")
        wait_for(lambda: "watch polled 3" in lines(log), "the handler to poll")
        # The client is still here: receive() must wait, not fail.
        waiting = [line for line in lines(log) if line.startswith("watch ")]
        assert waiting == ["watch polled 3"], waiting
    finally:
        # A reset, which the server cannot take for a half-close (see the
        # next test): only the cancelled receive() is in question here.
        reset(sock)

    def ended() -> list[str]:
        watched = [line for line in lines(log) if line.startswith("watch ")]
        return watched if len(watched) > 1 else []

    assert wait_for(ended, "the handler's end") == ["watch polled 3", "watch got http.disconnect"]


def test_starlette_waiting_app_sees_a_closed_client(starlette: Served) -> None:
    log = starlette.folder / "events.log"
    with socket.create_connection(("127.0.0.1", starlette.running.port), DEADLINE) as sock:
        sock.sendall(b"GET /hold HTTP/1.1\r\nHost: test\r\n\r\n")
        wait_for(lambda: "hold waiting" in lines(log), "the handler to wait")
    # An ordinary close: uvicorn (and hypercorn) tell the app at once; a
    # long poll or an SSE endpoint waiting on receive() must end.
    end = time.monotonic() + DISCONNECT_BOUND
    while "hold got http.disconnect" not in lines(log):
        assert time.monotonic() < end, "the app was never told the client had gone"
        time.sleep(0.01)


def test_starlette_websocket_app_returns_or_fails(starlette: Served) -> None:
    # Returning without closing: the server closes normally.
    with connect(f"{starlette.ws_url}/ws-return", open_timeout=DEADLINE) as ws:
        assert ws.recv(timeout=DEADLINE) == "bye without closing"
        with pytest.raises(websockets.exceptions.ConnectionClosed):
            ws.recv(timeout=DEADLINE)
        assert ws.close_code == 1000
    # Raising after accept: 1011 (internal error), as uvicorn.
    with connect(f"{starlette.ws_url}/ws-crash", open_timeout=DEADLINE) as ws:
        assert ws.recv(timeout=DEADLINE) == "about to fail"
        with pytest.raises(websockets.exceptions.ConnectionClosed):
            ws.recv(timeout=DEADLINE)
        assert ws.close_code == 1011
    # Raising before accept: an HTTP 500, as uvicorn.
    with pytest.raises(websockets.exceptions.InvalidStatus) as info:
        connect(f"{starlette.ws_url}/ws-crash-early", open_timeout=DEADLINE)
    assert info.value.response.status_code == 500
    wait_for(
        lambda: "the socket handler failed before accepting" in starlette.running.stderr,
        "the log",
    )


def test_starlette_websocket_client_close_reaches_the_app(starlette: Served) -> None:
    log = starlette.folder / "events.log"
    with connect(f"{starlette.ws_url}/ws-record", open_timeout=DEADLINE) as ws:
        ws.close(code=4100, reason="leaving now")
    wait_for(lambda: any(x.startswith("ws send after") for x in lines(log)), "the app's end")
    assert "ws got websocket.disconnect 4100 'leaving now'" in lines(log)


def test_starlette_websocket_message_too_big(tmp_path: Path) -> None:
    folder = app_folder(tmp_path, "starlette_app")
    with (
        treadle_run(folder, "starlette_app:app", "--port", "0", "--ws-max-size", "1000") as run_,
        connect(f"ws://127.0.0.1:{run_.port}/ws", open_timeout=DEADLINE) as ws,
    ):
        ws.send("x" * 1000)
        assert ws.recv(timeout=DEADLINE) == "echo: " + "x" * 1000
        ws.send("x" * 1001)
        with pytest.raises(websockets.exceptions.ConnectionClosed):
            ws.recv(timeout=DEADLINE)
        assert ws.close_code == 1009


def test_starlette_root_path(tmp_path: Path) -> None:
    # Behind a proxy that strips /api: scope root_path, and what Starlette
    # builds from it (the slash redirect) carries the prefix.
    folder = app_folder(tmp_path, "starlette_app")
    with (
        treadle_run(folder, "starlette_app:app", "--port", "0", "--root-path", "/api") as run_,
        httpx.Client(base_url=f"http://127.0.0.1:{run_.port}", timeout=DEADLINE) as client,
    ):
        assert client.get("/users/5").json() == {"id": 5, "type": "int"}
        response = client.get("/slash")
        assert response.status_code == 307
        assert response.headers["location"] == f"http://127.0.0.1:{run_.port}/api/slash/"


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The Starlette app behind --limit-request-body 1000."""
    folder = app_folder(tmp_path_factory.mktemp("limited"), "starlette_app")
    args = ("starlette_app:app", "--port", "0", "--limit-request-body", "1000")
    with treadle_run(folder, *args) as running:
        yield Served(running, folder)


def test_starlette_body_limit_with_a_length(limited: Served) -> None:
    with limited.client() as client:
        assert client.post("/digest", content=b"x" * 1000).json()["size"] == 1000
        response = client.post("/digest", content=b"x" * 1001)
        assert response.status_code == 413


def test_starlette_body_limit_chunked(limited: Served) -> None:
    # The limit is found as the body flows; the HTTPError(413) receive()
    # raises goes through the app, and Starlette, like every framework,
    # answers an exception out of a handler with its own 500.
    with limited.client() as client:
        response = client.post("/digest", content=iter([b"x" * 600, b"x" * 600]))
        assert response.status_code == 413


def test_starlette_lifespan_shutdown_runs_at_the_stop(tmp_path: Path) -> None:
    folder = app_folder(tmp_path, "starlette_app")
    with treadle_run(folder, "starlette_app:app", "--port", "0") as running:
        with httpx.Client(timeout=DEADLINE) as client:
            assert client.get(f"http://127.0.0.1:{running.port}/state").status_code == 200
        assert "lifespan shutdown" not in contents(folder / "events.log")
        assert running.stop() == 0
    assert lines(folder / "events.log") == [f"lifespan shutdown in {running.proc.pid}"]


@pytest.mark.parametrize(
    "args", [[], ["--lifespan", "on"], ["--workers", "2"]], ids=["auto", "on", "workers"]
)
def test_starlette_lifespan_startup_failure_exits(tmp_path: Path, args: list[str]) -> None:
    folder = app_folder(tmp_path, "starlette_app")
    result = subprocess.run(
        [sys.executable, "-m", "treadle", "run", "starlette_app:failing", "--port", "0", *args],
        cwd=folder,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=DEADLINE * 2,
        check=False,
    )
    assert result.returncode != 0
    assert "Running on" not in result.stdout
    assert "the database at db.invalid cannot be reached" in result.stderr
    assert "lifespan startup failed" in result.stderr


def test_starlette_lifespan_off_skips_the_startup(tmp_path: Path) -> None:
    folder = app_folder(tmp_path, "starlette_app")
    with (
        treadle_run(folder, "starlette_app:failing", "--port", "0", "--lifespan", "off") as running,
        httpx.Client(timeout=DEADLINE) as client,
    ):
        url = f"http://127.0.0.1:{running.port}"
        assert client.get(f"{url}/users/3").json() == {"id": 3, "type": "int"}


# -- FastAPI --------------------------------------------------------------------------


def test_fastapi_typed_path_and_query_params(fastapi: Served) -> None:
    with fastapi.client() as client:
        response = client.get("/items/5", params={"q": "blue", "limit": "20"})
        assert response.status_code == 200
        assert response.json() == {"item_id": 5, "q": "blue", "limit": 20}
        assert client.get("/items/6").json() == {"item_id": 6, "q": None, "limit": 10}

        response = client.get("/items/five")
        assert response.status_code == 422
        [error] = response.json()["detail"]
        assert error["loc"] == ["path", "item_id"]
        assert error["type"] == "int_parsing"

        response = client.get("/items/5", params={"limit": "1000"})
        assert response.status_code == 422
        [error] = response.json()["detail"]
        assert error["loc"] == ["query", "limit"]
        assert error["type"] == "less_than_equal"


def test_fastapi_pydantic_body_and_validation_errors(fastapi: Served) -> None:
    token = {"X-Token": "secret-token-1"}
    with fastapi.client() as client:
        item = {"name": "lamp", "price": 10.0, "tags": ["light"]}
        response = client.post("/items", json=item, headers=token)
        assert response.status_code == 201
        assert response.json() == {
            "name": "lamp",
            "price_with_tax": 12.0,
            "tags": ["light"],
            "owner": "ada",
        }

        response = client.post("/items", json={"name": "", "price": -1}, headers=token)
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/json"
        errors = {tuple(e["loc"]): e["type"] for e in response.json()["detail"]}
        assert errors == {
            ("body", "name"): "string_too_short",
            ("body", "price"): "greater_than",
        }

        response = client.post(
            "/items",
            content=b'{"name": "lamp", "price": ',
            headers={**token, "content-type": "application/json"},
        )
        assert response.status_code == 422
        [error] = response.json()["detail"]
        assert error["type"] == "json_invalid"


def test_fastapi_dependency_injection(fastapi: Served) -> None:
    with fastapi.client() as client:
        response = client.get("/me", headers={"X-Token": "secret-token-2"})
        assert response.status_code == 200
        assert response.json()["user"] == "grace"
        response = client.get("/me", headers={"X-Token": "wrong"})
        assert response.status_code == 401
        assert response.json() == {"detail": "unknown token"}
        # A required header missing: FastAPI's validation error.
        response = client.get("/me")
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["header", "x-token"]


def test_fastapi_http_exception_and_unhandled_error(fastapi: Served) -> None:
    with fastapi.client() as client:
        response = client.get("/missing/7")
        assert response.status_code == 404
        assert response.json() == {"detail": "item 7 not found"}
        response = client.get("/no/such/route")
        assert response.status_code == 404
        assert response.json() == {"detail": "Not Found"}
    with fastapi.client() as client:
        response = client.get("/boom")
        assert response.status_code == 500
        assert response.text == "Internal Server Error"
    wait_for(lambda: "ValueError: an unhandled error" in fastapi.running.stderr, "the log")
    with fastapi.client() as client:
        assert client.get("/items/1").status_code == 200


def test_fastapi_streaming_response(fastapi: Served) -> None:
    with fastapi.client() as client, client.stream("GET", "/countdown?start=4") as response:
        assert response.headers["transfer-encoding"] == "chunked"
        assert b"".join(response.iter_raw()) == b"4\n3\n2\n1\nliftoff\n"


def test_fastapi_background_task(fastapi: Served) -> None:
    log = fastapi.folder / "notifications.log"
    with fastapi.client() as client:
        response = client.post("/notify/n1")
        assert response.status_code == 202
        assert response.json() == {"queued": "n1"}
        wait_for(lambda: "started n1" in lines(log), "the background task to start")
        assert "finished n1" not in contents(log)
        (fastapi.folder / "release").touch()
        wait_for(lambda: "finished n1" in lines(log), "the background task to finish")


def test_fastapi_static_files(fastapi: Served) -> None:
    with fastapi.client() as client:
        response = client.get("/static/style.css")
        assert response.content == STYLE
        etag = response.headers["etag"]
        assert client.get("/static/style.css", headers={"If-None-Match": etag}).status_code == 304
        assert client.get("/static/missing.css").status_code == 404


def test_fastapi_websocket(fastapi: Served) -> None:
    with connect(f"{fastapi.ws_url}/ws/lobby?name=ada", open_timeout=DEADLINE) as ws:
        assert ws.recv(timeout=DEADLINE) == '{"room":"lobby","welcome":"ada"}'
        ws.send("hi all")
        assert ws.recv(timeout=DEADLINE) == "ada@lobby: hi all"
        ws.send("bye")
        with pytest.raises(websockets.exceptions.ConnectionClosed):
            ws.recv(timeout=DEADLINE)
        assert ws.close_code == 1000
        assert ws.close_reason == "bye, ada"


def test_fastapi_lifespan_state(fastapi: Served) -> None:
    with fastapi.client() as client:
        assert client.get("/state").json() == {
            "model": "the model the lifespan loaded",
            "started_in": fastapi.running.proc.pid,
        }


# -- workers --------------------------------------------------------------------------


def test_two_asgi_workers_both_answer(tmp_path: Path) -> None:
    folder = app_folder(tmp_path, "starlette_app")
    with treadle_run(folder, "starlette_app:app", "--port", "0", "--workers", "2") as running:
        pids: set[str] = set()

        def both_seen() -> bool:
            # A new connection each time: the kernel spreads connections.
            with httpx.Client(timeout=DEADLINE) as client:
                response = client.get(f"http://127.0.0.1:{running.port}/pid")
            assert response.status_code == 200
            pids.add(response.text)
            return len(pids) == 2

        wait_for(both_seen, "both workers to answer")
        assert str(running.proc.pid) not in pids  # the parent never serves


# -- in-process, on both loops -----------------------------------------------------------


def test_starlette_in_process(loop: asyncio.AbstractEventLoop, tmp_path: Path) -> None:
    folder = app_folder(tmp_path, "starlette_app")
    app = make_app(folder)

    async def main() -> None:
        runner = ASGIRunner(app)
        await runner.setup()
        site = TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = site.name
        try:
            async with aiohttp.ClientSession() as session:
                async with session.get(f"{url}/users/9") as response:
                    assert await response.json() == {"id": 9, "type": "int"}
                async with session.get(f"{url}/state") as response:
                    assert (await response.json())["greeting"] == "hello from the lifespan"
                async with session.post(f"{url}/json", json={"a": [1, 2]}) as response:
                    assert await response.json() == {"got": {"a": [1, 2]}}
                async with session.get(f"{url}/numbers?count=3") as response:
                    assert response.headers["Transfer-Encoding"] == "chunked"
                    assert await response.read() == b"line 0\nline 1\nline 2\n"
                async with session.get(f"{url}/static/style.css") as response:
                    assert await response.read() == STYLE
                async with session.get(f"{url}/fail") as response:
                    assert response.status == 500
                async with session.ws_connect(f"{url}/ws", protocols=["echo.v1"]) as ws:
                    assert ws.protocol == "echo.v1"
                    await ws.send_str("in-process")
                    assert await ws.receive_str() == "echo: in-process"
                    await ws.send_str("close-me")
                    message = await ws.receive()
                    assert message.type is aiohttp.WSMsgType.CLOSE
                    assert (message.data, message.extra) == (4001, "closing as asked")
        finally:
            await runner.cleanup()

    run(loop, main())
