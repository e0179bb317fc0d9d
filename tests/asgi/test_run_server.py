"""`treadle.run_server()`, the programmatic entry point (uvicorn.run's
counterpart): a script serves an ASGI app object until SIGTERM, as
`treadle run` would; an object cannot be pre-forked."""

from __future__ import annotations

import re
import select
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

import treadle
from tests.web.test_cli import DEADLINE, subprocess_env

SCRIPT = """
import treadle

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    headers = [(b"content-type", b"text/plain")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"from a script"})

if __name__ == "__main__":
    raise SystemExit(treadle.run_server(app, port=0, lifespan="off"))
"""


def test_a_script_serves_an_asgi_app_object(tmp_path: Path) -> None:
    (tmp_path / "script.py").write_text(SCRIPT)
    proc = subprocess.Popen(
        [sys.executable, "script.py"],
        cwd=tmp_path,
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], DEADLINE)
        banner = proc.stdout.readline() if ready else ""
        match = re.search(r"http://127\.0\.0\.1:(\d+)", banner)
        assert match, banner
        with urllib.request.urlopen(f"http://127.0.0.1:{match.group(1)}/", timeout=10) as resp:
            assert resp.read() == b"from a script"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(DEADLINE) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_workers_need_an_import_string() -> None:
    async def app(scope: object, receive: object, send: object) -> None:
        pass

    with pytest.raises(ValueError, match="import string"):
        treadle.run_server(app, workers=2)
