"""`treadle.testing`'s synchronous client and the pytest plugin, used as a user would."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import urllib.request
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from tests.conftest import LOOP_FACTORIES
from treadle import pytest_plugin, web
from treadle.testing import SyncTestClient

ROOT = Path(__file__).resolve().parents[2]

# The plugin's fixture, also where the entry point is not installed (a checkout
# without `pip install -e .`); test_the_plugin_is_registered shows the real thing.
treadle_client = pytest_plugin.treadle_client


def make_app(log: list[str]) -> web.Application:
    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"hello": request.match_info["name"]})

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.Response(body=body, headers={"X-Method": request.method})

    async def on_startup(app: web.Application) -> None:
        log.append("startup")

    async def on_cleanup(app: web.Application) -> None:
        log.append("cleanup")

    app = web.Application()
    app.router.add_get("/hello/{name}", hello)
    app.router.add_route("*", "/echo", echo)
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app


def no_server_threads() -> bool:
    return not [t for t in threading.enumerate() if t.name == "treadle-test-server"]


def test_the_fixture_in_a_synchronous_test(
    treadle_client: pytest_plugin.ClientFactory, loop_kind: str
) -> None:
    log: list[str] = []
    client = treadle_client(make_app(log), loop_factory=LOOP_FACTORIES[loop_kind])
    assert log == ["startup"]
    resp = client.get("/hello/world")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
    assert resp.json() == {"hello": "world"}
    resp = client.post("/echo", body=b"posted")
    assert (resp.status, resp.body, resp.headers["X-Method"]) == (200, b"posted", "POST")
    resp = client.put("/echo", json_body={"a": 1})
    assert json.loads(resp.text) == {"a": 1}
    for method in ("patch", "delete", "options"):
        assert getattr(client, method)("/echo").headers["X-Method"] == method.upper()
    resp = client.head("/hello/x")
    assert (resp.status, resp.body) == (200, b"")
    assert client.get("/missing").status == 404
    # The server serves between calls too: any other client can use it.
    with urllib.request.urlopen(client.url("/hello/urllib")) as answer:
        assert json.load(answer) == {"hello": "urllib"}


def test_the_client_runs_the_lifecycle_and_leaves_nothing() -> None:
    log: list[str] = []
    with SyncTestClient(make_app(log)) as client:
        assert client.get("/hello/a").json() == {"hello": "a"}
        assert log == ["startup"]
    assert log == ["startup", "cleanup"]
    assert no_server_threads()
    with pytest.raises(RuntimeError, match="not serving"):
        client.get("/hello/a")


def test_a_startup_error_reaches_the_test() -> None:
    async def fail(app: web.Application) -> None:
        raise LookupError("no database")

    app = web.Application()
    app.on_startup.append(fail)
    with pytest.raises(LookupError, match="no database"):
        SyncTestClient(app).start()
    assert no_server_threads()


def test_a_hung_handler_fails_the_call_not_the_session() -> None:
    async def hang(request: web.Request) -> web.Response:
        await request.app["never"].wait()
        raise AssertionError("unreachable")

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def make_event(app: web.Application) -> None:
        app["never"] = asyncio.Event()

    app = web.Application()
    app.router.add_get("/hang", hang)
    app.router.add_get("/ok", ok)
    app.on_startup.append(make_event)
    with SyncTestClient(app, timeout=0.2, shutdown_timeout=0.1) as client:
        with pytest.raises(TimeoutError, match="no answer from the test server"):
            client.get("/hang")
        client.timeout = 30.0
        assert client.get("/ok").text == "ok"  # on a fresh connection
    assert no_server_threads()


USER_TEST = """
from pathlib import Path

from treadle import web


async def hello(request):
    return web.json_response({"hello": request.match_info["name"]})


async def on_cleanup(app):
    (Path(__file__).parent / "cleaned").touch()


def test_hello(treadle_client):
    app = web.Application()
    app.router.add_get("/hello/{name}", hello)
    app.on_cleanup.append(on_cleanup)
    client = treadle_client(app)
    assert client.get("/hello/world").json() == {"hello": "world"}
"""


def test_the_plugin_is_registered(tmp_path: Path) -> None:
    if not [e for e in entry_points(group="pytest11") if e.value == "treadle.pytest_plugin"]:
        pytest.skip("the pytest11 entry point is not installed (pip install -e . adds it)")
    (tmp_path / "test_user.py").write_text(USER_TEST)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_user.py"],
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    assert (tmp_path / "cleaned").exists()  # the fixture closed the client after the test
