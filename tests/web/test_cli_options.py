"""`treadle run` options from the environment: every option also reads
`TREADLE_<OPTION>` (the command line wins), and a bad value is refused as
the option's would be."""

from __future__ import annotations

import concurrent.futures
import subprocess
import sys
from pathlib import Path

import pytest

from .test_cli import fetch, subprocess_env, treadle_run

WSGI_APP = """
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"wsgi at " + environ["SCRIPT_NAME"].encode()]
"""


def test_options_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "plainwsgi.py").write_text(WSGI_APP)
    monkeypatch.setenv("TREADLE_INTERFACE", "wsgi")
    monkeypatch.setenv("TREADLE_ROOT_PATH", "/mounted")
    monkeypatch.setenv("TREADLE_PORT", "0")
    with treadle_run(tmp_path, "plainwsgi:app") as server:
        status, _, body = fetch(server.port, "/mounted/x")
        assert (status, body) == (200, b"wsgi at /mounted")
    # The command line wins over the environment.
    with treadle_run(tmp_path, "plainwsgi:app", "--root-path", "/cli") as server:
        assert fetch(server.port, "/cli/x")[2] == b"wsgi at /cli"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("TREADLE_INTERFACE", "cgi", "TREADLE_INTERFACE='cgi': not one of"),
        ("TREADLE_WORKERS", "0", "TREADLE_WORKERS='0': must be at least 1"),
        ("TREADLE_NO_GC_TUNING", "maybe", "must be true or false"),
    ],
)
def test_a_bad_value_in_the_environment_is_refused(
    tmp_path: Path, name: str, value: str, message: str
) -> None:
    (tmp_path / "plainwsgi.py").write_text(WSGI_APP)
    env = subprocess_env() | {name: value}
    result = subprocess.run(
        [sys.executable, "-m", "treadle", "run", "plainwsgi:app", "--port", "0"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert message in result.stderr


WHO_APP = """
import asyncio
from treadle import web

async def who(request):
    if request.path == "/slow":
        await asyncio.sleep(1)
    return web.Response(text=f"{request.remote} {request.scheme} {request.host}")

app = web.Application()
app.router.add_get("/", who)
app.router.add_get("/slow", who)
"""


def test_proxy_options_through_treadle_run(tmp_path: Path) -> None:
    (tmp_path / "whoapp.py").write_text(WHO_APP)
    forwarded = {"X-Forwarded-For": "203.0.113.5", "X-Forwarded-Proto": "https", "Host": "inner"}
    with treadle_run(
        tmp_path,
        "whoapp:app",
        "--port",
        "0",
        "--proxy-headers",
        "--forwarded-allow-ips",
        "127.0.0.1",
    ) as server:
        assert fetch(server.port, "/", forwarded)[2] == b"203.0.113.5 https inner"
    with treadle_run(tmp_path, "whoapp:app", "--port", "0", "--proxy-headers") as server:
        # No --forwarded-allow-ips: nobody is trusted, and it says so.
        assert fetch(server.port, "/", forwarded)[2] == b"127.0.0.1 http inner"
        assert "no peer is trusted" in server.stderr


def test_limit_concurrency_through_treadle_run(tmp_path: Path) -> None:
    (tmp_path / "whoapp.py").write_text(WHO_APP)
    with (
        treadle_run(tmp_path, "whoapp:app", "--port", "0", "--limit-concurrency", "1") as server,
        concurrent.futures.ThreadPoolExecutor(2) as pool,
    ):
        slow = pool.submit(fetch, server.port, "/slow")
        statuses = []
        while not slow.done() and 503 not in statuses:
            statuses.append(fetch(server.port, "/")[0])
        assert 503 in statuses  # while /slow was in flight
        assert slow.result()[0] == 200
