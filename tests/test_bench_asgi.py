"""bench/asgi.py and bench/asgi_inproc.py, through real processes and sockets.

The ASGI/WSGI benchmark is only worth its figures if every server answers
the same bytes for an app: Treadle is started on each benchmark app the way
the script starts it, and must give the app's expected answer; the
script's check must notice a server that answers otherwise. Then the script
runs end to end (where wrk is installed) and the in-process one once.
Nothing here measures speed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return _load("bench_asgi", ROOT / "bench" / "asgi.py")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("PYTHONASYNCIODEBUG", None)
    return env


@contextmanager
def _treadle(bench: ModuleType, app: Any) -> Iterator[int]:
    """Treadle serving `app`, started with the script's own command."""
    port = bench.base.free_port()
    settings = bench.Settings(port, 128, 4, None)
    proc = subprocess.Popen(
        bench._treadle(app, settings),
        cwd=ROOT,
        env=_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        bench.base.wait_ready(proc, port, timeout=60.0)
        yield port
    finally:
        bench.base.stop(proc)


def _app(bench: ModuleType, name: str) -> Any:
    app = next(a for a in bench.APPS if a.name == name)
    for module in app.requires:
        pytest.importorskip(module)
    return app


@pytest.mark.parametrize("name", ["bare", "starlette", "fastapi", "flask"])
def test_treadle_answers_each_app_as_expected(bench: ModuleType, name: str) -> None:
    app = _app(bench, name)
    with _treadle(bench, app) as port:
        got = bench.answers(port)
    assert bench.differences(app, got, None, "treadle") == []
    assert got[bench.HELLO] == (200, app.content_type.replace(" ", ""), app.body)
    # The escaped name: percent-decoded, then HTML-escaped (or JSON-encoded).
    status, _, body = got["/hello/a%20b%3C"]
    assert status == 200
    assert (b"a b&lt;" if name != "fastapi" else b"a b<") in body
    assert got["/nowhere/at/all"][0] == 404


def test_the_check_notices_a_server_that_answers_otherwise(bench: ModuleType) -> None:
    """Starlette's app and the bare one answer /hello/world alike but their
    404s differ: measured as the same app, the check must say so, path by
    path; and an answer that is not the app's expected one is flagged."""
    bare, starlette = _app(bench, "bare"), _app(bench, "starlette")
    with _treadle(bench, starlette) as port:
        reference = bench.answers(port)
    with _treadle(bench, bare) as port:
        got = bench.answers(port)
    assert bench.differences(starlette, got, reference, "first") != []
    problems = bench.differences(starlette, got, reference, "first")
    assert len(problems) == 1 and problems[0].startswith("/nowhere/at/all: 404")
    assert "where first answered 404" in problems[0]
    fastapi = next(a for a in bench.APPS if a.name == "fastapi")
    wrong = bench.differences(fastapi, got, None, "first")
    assert any("Content-Type" in p for p in wrong)
    assert any("body" in p for p in wrong)


@pytest.mark.skipif(shutil.which("wrk") is None, reason="bench/asgi.py needs wrk")
def test_asgi_script_end_to_end(tmp_path: Path) -> None:
    pytest.importorskip("uvicorn")
    pytest.importorskip("httptools")
    pytest.importorskip("uvloop")
    out = tmp_path / "asgi.json"
    proc = subprocess.run(
        [
            sys.executable, str(ROOT / "bench" / "asgi.py"), "--only", "treadle",
            "--only", "uvicorn", "--apps", "bare", "--seconds", "1", "--warmup", "1",
            "--cpu", "-1", "--json", str(out),
        ],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "the answer differs" not in proc.stdout
    report = json.loads(out.read_text())
    rows = report["results"]["bare"]
    for server in ("treadle", "uvicorn"):
        assert rows[server]["ok_per_s"] > 0
        assert rows[server]["cpu_us_per_request"] > 0
        assert not rows[server]["error"]
    (check,) = report["targets"]  # bare vs uvicorn: granian was not run
    assert (check["app"], check["peer"], check["target"]) == ("bare", "uvicorn", 1.5)
    assert check["met"] == (check["ratio"] >= 1.5)
    assert "bare       vs uvicorn" in proc.stdout


def test_inproc_script_answers_and_prints(tmp_path: Path) -> None:
    pytest.importorskip("starlette")
    proc = subprocess.run(
        [
            sys.executable, str(ROOT / "bench" / "asgi_inproc.py"), "--app", "bare",
            "--app", "starlette", "--requests", "200", "--repeat", "2", "--parts",
        ],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "bare " in proc.stdout and "starlette " in proc.stdout
    assert "Treadle's share" in proc.stdout
    assert "take_framing" in proc.stdout
