"""The examples run as their docstrings and the README say: the seed's programs
1-4 with the output the seed shows, and the FastAPI and Flask apps served by
`treadle run` from the checkout."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
from websockets.sync.client import connect

from tests.web.test_cli import DEADLINE, treadle_run

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def run_example(name: str) -> list[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("PYTHONASYNCIODEBUG", None)
    result = subprocess.run(
        [sys.executable, "-W", "ignore::DeprecationWarning", str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout.splitlines()


def test_seed_1_generator() -> None:
    expected = []
    for n in range(1, 6):
        expected += [
            f"[PRODUCER] Producing {n}...",
            f"[CONSUMER] Consuming {n}...",
            "[PRODUCER] Consumer return: 200 OK",
        ]
    assert run_example("seed_1_generator.py") == expected


def test_seed_2_generator_coroutine_on_the_loop() -> None:
    assert run_example("seed_2_coroutine.py") == ["Hello world!", "Hello again!"]


def test_seed_3_two_coroutines_on_one_thread() -> None:
    lines = run_example("seed_3_two_coroutines.py")
    assert len(lines) == 4
    pattern = re.compile(r"Hello (world|again)! \(<_MainThread\(MainThread, started (\d+)\)>\)")
    matches = [pattern.fullmatch(line) for line in lines]
    assert all(matches), lines
    # Both hellos start before either finishes: they ran concurrently, so the
    # program takes one second, not two.
    assert [m.group(1) for m in matches if m] == ["world", "world", "again", "again"]
    assert len({m.group(2) for m in matches if m}) == 1  # one thread throughout


def test_seed_4_async_await() -> None:
    assert run_example("seed_4_async_await.py") == ["Hello world!", "Hello again!"]


def test_treadle_demo_runs_the_seed_programs() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, "-W", "ignore::DeprecationWarning", "-m", "treadle", "demo"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "[PRODUCER] Consumer return: 200 OK" in out
    assert out.count("Hello again!") == 4


def test_fastapi_example(tmp_path: Path) -> None:
    # `treadle run examples.fastapi_app:app`, from the checkout, as the README says.
    with (
        treadle_run(ROOT, "examples.fastapi_app:app", "--port", "0", logs=tmp_path) as running,
        httpx.Client(base_url=f"http://127.0.0.1:{running.port}", timeout=DEADLINE) as client,
    ):
        assert client.get("/todos").json() == [
            {"title": "serve a FastAPI app with Treadle", "done": True, "id": 1}
        ]
        response = client.post("/todos", json={"title": "read docs/asgi.md"})
        assert response.status_code == 201
        assert response.json() == {"title": "read docs/asgi.md", "done": False, "id": 2}
        assert client.get("/todos/2").json()["title"] == "read docs/asgi.md"
        assert client.get("/todos/99").status_code == 404
        assert client.post("/todos", json={"title": ""}).status_code == 422
        with connect(f"ws://127.0.0.1:{running.port}/ws", open_timeout=DEADLINE) as ws:
            ws.send("ping")
            assert ws.recv(timeout=DEADLINE) == "ping"


def test_flask_example(tmp_path: Path) -> None:
    # `treadle run examples.flask_app:app --interface wsgi`, as the README says.
    args = ("examples.flask_app:app", "--interface", "wsgi", "--port", "0")
    with (
        treadle_run(ROOT, *args, logs=tmp_path) as running,
        httpx.Client(base_url=f"http://127.0.0.1:{running.port}", timeout=DEADLINE) as client,
    ):
        response = client.get("/")
        assert response.status_code == 200
        assert "<h1>Guestbook</h1>" in response.text
        response = client.post("/", data={"name": "Ada", "message": "<hello>"})
        assert response.status_code == 303
        assert response.headers["location"] == "/"
        assert "<b>Ada</b>: &lt;hello&gt;" in client.get("/").text
        response = client.post("/api/entries", json={"name": "Grace", "message": "hi"})
        assert response.status_code == 201
        assert client.get("/api/entries").json() == [
            {"name": "Ada", "message": "<hello>"},
            {"name": "Grace", "message": "hi"},
        ]
        assert client.post("/api/entries", json={"name": "x"}).status_code == 400
