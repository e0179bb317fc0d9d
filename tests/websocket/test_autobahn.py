"""Conformance by the Autobahn|Testsuite case files, through `kosoku` (a native
runner of them, no Docker): its fuzzing client drives a Treadle echo server
(`treadle run tests.websocket.autobahn_app:app`, Treadle's loop) through
sections 1-7, 9 and 10 whole and a subset of the permessage-deflate
sections 12 and 13 (every parameter group, three payload sizes). Every case
must end OK, NON-STRICT or INFORMATIONAL.

Marked `autobahn`: CI runs it on one interpreter (`.ci/run`). By hand:

    .venv/bin/python -m pytest tests/websocket/test_autobahn.py -v
    # the whole of 12 and 13 (about 10 minutes), the report in /tmp/autobahn:
    TREADLE_AUTOBAHN_ALL=1 .venv/bin/python -m pytest tests/websocket/test_autobahn.py -s
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KOSOKU = shutil.which("kosoku", path=str(Path(sys.executable).parent)) or shutil.which("kosoku")

pytestmark = [
    pytest.mark.autobahn,
    pytest.mark.skipif(KOSOKU is None, reason="kosoku is not installed (the test extra has it)"),
]

WHOLE = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*"]
# 12.X.Y and 13.X.Y: X is the data (12) or the parameter group (13), Y one of
# 18 sizes; 1 is 16-byte messages, 5 is 4 KiB, 11 is 8 KiB in 256-byte frames.
DEFLATE = [f"12.{x}.{y}" for x in range(1, 6) for y in (1, 5, 11)] + [
    f"13.{x}.{y}" for x in range(1, 8) for y in (1, 5, 11)
]
PASSING = {"OK", "NON-STRICT", "INFORMATIONAL"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def echo_server() -> Iterator[int]:
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "treadle",
            "run",
            "tests.websocket.autobahn_app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the echo server did not start: {server.stderr}") from None
                time.sleep(0.05)
        yield port
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        assert server.stderr is not None
        server.stderr.close()


def run_cases(
    port: int, cases: list[str], outdir: Path, timeout: float
) -> dict[str, dict[str, object]]:
    """Run `cases` with kosoku's fuzzing client; its per-case verdicts. The
    run is bounded: kosoku waits forever on a server that never answers."""
    assert KOSOKU is not None
    args = [KOSOKU, f"127.0.0.1:{port}", "-p", "4", "-o", str(outdir)]
    for case in cases:
        args += ["-i", case]
    subprocess.run(
        args, timeout=timeout, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False
    )
    index = json.loads((outdir / "index.json").read_text())
    (results,) = index.values()
    return dict(results)


def failures(results: dict[str, dict[str, object]]) -> list[str]:
    return [
        f"{case}: {r['behavior']}/{r['behaviorClose']}"
        for case, r in sorted(results.items())
        if r["behavior"] not in PASSING or r["behaviorClose"] not in PASSING
    ]


def test_sections_1_to_7_9_and_10(echo_server: int, tmp_path: Path) -> None:
    results = run_cases(echo_server, WHOLE, tmp_path, timeout=300)
    assert len(results) >= 300, f"only {len(results)} cases ran"
    assert failures(results) == []


def test_permessage_deflate_sections_12_and_13(echo_server: int, tmp_path: Path) -> None:
    everything = os.environ.get("TREADLE_AUTOBAHN_ALL")
    outdir = Path("/tmp/autobahn") if everything else tmp_path
    cases = ["12.*", "13.*"] if everything else DEFLATE
    results = run_cases(echo_server, cases, outdir, timeout=3600 if everything else 300)
    assert len(results) == (216 if everything else len(DEFLATE)), sorted(results)
    assert failures(results) == []
