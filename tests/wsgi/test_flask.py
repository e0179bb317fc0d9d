"""A Flask app nobody here wrote, served by Treadle's WSGI interface.

tests/wsgi/flask_app.py is copied into a temporary folder and started with
`python -m treadle run flask_app:app --interface wsgi --port 0`, as a user
would; the tests talk to it with httpx over real sockets. `treadle run`
always serves on Treadle's loop, so the tests that take the `loop` fixture
run the app in-process with `WSGIRunner` on both loops. Waits are bounded by
DEADLINE.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import os
import shutil
import socket
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import httpx
import pytest

from tests.conftest import run
from tests.web.test_cli import DEADLINE, Running, lines, treadle_run, wait_for
from tests.wsgi.flask_app import create_app
from treadle.http.runner import TCPSite
from treadle.wsgi import WSGIRunner

HERE = Path(__file__).resolve().parent
REPORT = bytes(range(256)) * 1500  # 384,000 bytes served by send_file


@dataclass
class Served:
    """A `treadle run` process serving the Flask app from `folder`."""

    running: Running
    folder: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.running.port}"

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=DEADLINE)


def app_folder(folder: Path) -> Path:
    """`folder` holding a copy of flask_app.py and the files it serves."""
    shutil.copy(HERE / "flask_app.py", folder / "flask_app.py")
    (folder / "files").mkdir()
    (folder / "files" / "report.bin").write_bytes(REPORT)
    (folder / "files" / "empty.txt").write_bytes(b"")
    return folder


@pytest.fixture(scope="module")
def flask(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = app_folder(tmp_path_factory.mktemp("flask"))
    with treadle_run(folder, "flask_app:app", "--interface", "wsgi", "--port", "0") as running:
        yield Served(running, folder)


def test_routes_and_query(flask: Served) -> None:
    with flask.client() as client:
        response = client.get("/")
        assert response.status_code == 200
        assert response.text == "hello from flask"
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert client.get("/hello/%C3%A9milie").text == "hello, émilie!"
        response = client.get("/search", params=[("q", "ü & co"), ("tag", "a"), ("tag", "b")])
        assert response.json() == {
            "q": "ü & co",
            "tags": ["a", "b"],
            "path": "/search",
            "script_root": "",
        }


def test_urlencoded_form(flask: Served) -> None:
    with flask.client() as client:
        response = client.post("/form", data={"name": "Zoë O'Brien", "colour": ["red", "blue"]})
        assert response.status_code == 200
        assert response.json() == {
            "name": "Zoë O'Brien",
            "colours": ["red", "blue"],
            "content_type": "application/x-www-form-urlencoded",
        }
        # A required field missing: Flask's 400.
        assert client.post("/form", data={"colour": "red"}).status_code == 400


def test_json_in_and_out(flask: Served) -> None:
    document = {"b": [1, 2, {"c": None}], "a": "ünïcödé", "n": 1.5}
    with flask.client() as client:
        response = client.post("/json", json=document)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {"got": document, "keys": ["a", "b", "n"]}
        response = client.post(
            "/json", content=b"{broken", headers={"content-type": "application/json"}
        )
        assert response.status_code == 400


def test_streamed_generator_response(flask: Served) -> None:
    with flask.client() as client, client.stream("GET", "/stream?count=200") as response:
        assert response.status_code == 200
        assert response.headers["transfer-encoding"] == "chunked"
        assert "content-length" not in response.headers
        body = b"".join(response.iter_raw())
    assert body == b"".join(f"row {n}\n".encode() for n in range(200))


def test_endless_stream_is_closed_when_the_client_goes(flask: Served) -> None:
    with socket.create_connection(("127.0.0.1", flask.running.port), DEADLINE) as sock:
        sock.sendall(b"GET /endless HTTP/1.1\r\nHost: test\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 200 OK\r\n")
    # The generator's close() ran (its finally wrote the line).
    log = flask.folder / "events.log"
    wait_for(lambda: "endless stream closed" in lines(log), "the generator to be closed")


def test_file_upload(flask: Served) -> None:
    data = os.urandom(350_000)
    with flask.client() as client:
        response = client.post(
            "/upload",
            files={"file": ("photo.jpg", data, "image/jpeg")},
            data={"comment": "a photo, ça va"},
        )
        assert response.status_code == 200
        assert response.json() == {
            "filename": "photo.jpg",
            "content_type": "image/jpeg",
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "comment": "a photo, ça va",
        }


def test_request_body_with_and_without_length(flask: Served) -> None:
    data = os.urandom(200_000)

    def pieces() -> Iterator[bytes]:
        for start in range(0, len(data), 9_999):
            yield data[start : start + 9_999]

    expected = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    with flask.client() as client:
        assert client.post("/digest", content=data).json() == expected
        assert client.post("/digest", content=pieces()).json() == expected  # chunked
        # Expect: 100-continue: the body is asked for when the app reads it.
        response = client.post("/digest", content=data, headers={"Expect": "100-continue"})
        assert response.json() == expected


def test_errors(flask: Served) -> None:
    with flask.client() as client:
        response = client.get("/missing/3")
        assert response.status_code == 404
        assert "item 3 is not here" in response.text
        response = client.get("/no/such/page")
        assert response.status_code == 404
        response = client.post("/")
        assert response.status_code == 405
        assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}
        response = client.get("/boom")
        assert response.status_code == 500
        assert "Internal Server Error" in response.text
        # Flask answered the exception itself: the connection goes on.
        assert client.get("/").status_code == 200
    logged = "ValueError: an unhandled error in a Flask view"
    wait_for(lambda: logged in flask.running.stderr, "the log")


def test_send_file(flask: Served) -> None:
    with flask.client() as client:
        response = client.get("/files/report.bin")
        assert response.status_code == 200
        assert response.headers["content-length"] == str(len(REPORT))
        assert "transfer-encoding" not in response.headers
        assert response.content == REPORT

        response = client.head("/files/report.bin")
        assert response.status_code == 200
        assert response.headers["content-length"] == str(len(REPORT))
        assert response.content == b""

        response = client.get("/files/report.bin", headers={"Range": "bytes=1000-1999"})
        assert response.status_code == 206
        assert response.headers["content-range"] == f"bytes 1000-1999/{len(REPORT)}"
        assert response.headers["content-length"] == "1000"
        assert response.content == REPORT[1000:2000]

        etag = client.get("/files/report.bin").headers["etag"]
        response = client.get("/files/report.bin", headers={"If-None-Match": etag})
        assert response.status_code == 304
        assert response.content == b""

        response = client.get("/files/empty.txt")
        assert response.status_code == 200
        assert response.headers["content-length"] == "0"
        assert response.content == b""

        response = client.get("/attachment")
        assert response.headers["content-disposition"] == (
            "attachment; filename=resume.bin; filename*=UTF-8''r%C3%A9sum%C3%A9.bin"
        )
        assert response.content == REPORT
        # Still the same keep-alive connection, still in step.
        assert client.get("/").text == "hello from flask"


def test_file_wrapper_with_a_shorter_content_length(flask: Served) -> None:
    # PEP 3333: the server must not send more than the app's Content-Length
    # (gunicorn's sendfile path stops there too).
    with flask.client() as client:
        response = client.get("/head-of/report.bin?bytes=1000")
        assert response.headers["content-length"] == "1000"
        assert response.content == REPORT[:1000]


def test_send_file_range_closes_the_file(loop: asyncio.AbstractEventLoop, tmp_path: Path) -> None:
    # For a Range request Werkzeug wraps wsgi.file_wrapper in its range
    # wrapper, which iterates iter(wrapper) and, at close(), closes that
    # iterator. Treadle's FileWrapper.__iter__ is a generator, so the close
    # reaches the generator, never the file: the file is left to the garbage
    # collector, which warns (and, not seekable, the range is found by
    # reading the file from its start).
    app = create_app(app_folder(tmp_path))

    async def main() -> bytes:
        runner = WSGIRunner(app, threads=2)
        await runner.setup()
        site = TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"{site.name}/files/report.bin", headers={"Range": "bytes=10-19"}) as r,
            ):
                assert r.status == 206
                return await r.read()
        finally:
            await runner.cleanup()  # the request's thread is done after this

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert run(loop, main()) == REPORT[10:20]
        gc.collect()
    unclosed = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert unclosed == []


def test_a_stream_that_breaks_is_not_complete(flask: Served) -> None:
    # The generator raises after two chunks: the head is out, so the server
    # can only end the connection without the last chunk; the client must
    # see a truncated body, not a complete one.
    with flask.client() as client, client.stream("GET", "/broken-stream") as response:
        assert response.status_code == 200
        received = []
        with pytest.raises(httpx.RemoteProtocolError):
            for piece in response.iter_raw():
                received.append(piece)
    assert b"".join(received) == b"the first row\nthe second row\n"
    logged = "RuntimeError: the stream broke half-way"
    wait_for(lambda: logged in flask.running.stderr, "the log")


def test_cookies_and_redirect(flask: Served) -> None:
    with flask.client() as client:
        response = client.get("/cookies")
        assert response.headers.get_list("set-cookie") == [
            "session=abc123; HttpOnly; Path=/",
            "theme=dark; Path=/",
        ]
        response = client.get("/redirect", follow_redirects=True)
        assert response.text == "hello, redirected!"
        assert [r.status_code for r in response.history] == [302]


def test_root_path(tmp_path: Path) -> None:
    folder = app_folder(tmp_path)
    with (
        treadle_run(
            folder, "flask_app:app", "--interface", "wsgi", "--port", "0", "--root-path", "/api"
        ) as running,
        httpx.Client(base_url=f"http://127.0.0.1:{running.port}", timeout=DEADLINE) as client,
    ):
        response = client.get("/api/search?q=x")
        assert response.json() == {"q": "x", "tags": [], "path": "/search", "script_root": "/api"}


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The Flask app behind --limit-request-body 1000."""
    folder = app_folder(tmp_path_factory.mktemp("limited"))
    args = ("flask_app:app", "--interface", "wsgi", "--port", "0", "--limit-request-body", "1000")
    with treadle_run(folder, *args) as running:
        yield Served(running, folder)


def test_body_limit_with_a_length(limited: Served) -> None:
    with limited.client() as client:
        assert client.post("/digest", content=b"x" * 1000).json()["size"] == 1000
        assert client.post("/digest", content=b"x" * 1001).status_code == 413


def test_body_limit_chunked(limited: Served) -> None:
    # Flask turns the HTTPError that wsgi.input.read() raises into its 500.
    with limited.client() as client:
        response = client.post("/digest", content=iter([b"x" * 600, b"x" * 600]))
        assert response.status_code == 413


def test_two_wsgi_workers_both_answer(tmp_path: Path) -> None:
    folder = app_folder(tmp_path)
    args = ("flask_app:app", "--interface", "wsgi", "--port", "0", "--workers", "2")
    with treadle_run(folder, *args) as running:
        pids: set[str] = set()

        def both_seen() -> bool:
            with httpx.Client(timeout=DEADLINE) as client:
                response = client.get(f"http://127.0.0.1:{running.port}/pid")
            assert response.status_code == 200
            pid, thread = response.text.split()
            assert thread.startswith("treadle-wsgi")  # in the pool, not on the loop
            pids.add(pid)
            return len(pids) == 2

        wait_for(both_seen, "both workers to answer")
        assert str(running.proc.pid) not in pids


def test_flask_in_process(loop: asyncio.AbstractEventLoop, tmp_path: Path) -> None:
    folder = app_folder(tmp_path)
    app = create_app(folder)

    async def main() -> None:
        runner = WSGIRunner(app, threads=4)
        await runner.setup()
        site = TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = site.name
        try:
            async with aiohttp.ClientSession() as session:
                async with session.get(f"{url}/hello/loop") as response:
                    assert await response.text() == "hello, loop!"
                form = {"name": "ada", "colour": "green"}
                async with session.post(f"{url}/form", data=form) as response:
                    assert (await response.json())["colours"] == ["green"]
                async with session.get(f"{url}/stream?count=3") as response:
                    assert response.headers["Transfer-Encoding"] == "chunked"
                    assert await response.read() == b"row 0\nrow 1\nrow 2\n"
                data = aiohttp.FormData()
                data.add_field("file", os.urandom(1000), filename="f.bin")
                async with session.post(f"{url}/upload", data=data) as response:
                    assert (await response.json())["size"] == 1000
                async with session.get(f"{url}/files/report.bin") as response:
                    assert response.headers["Content-Length"] == str(len(REPORT))
                    assert await response.read() == REPORT
                async with session.get(f"{url}/boom") as response:
                    assert response.status == 500
        finally:
            await runner.cleanup()

    run(loop, main())
