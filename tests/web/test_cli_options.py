"""`treadle run` options from the environment: every option also reads
`TREADLE_<OPTION>` (the command line wins), and a bad value is refused as
the option's would be."""

from __future__ import annotations

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
