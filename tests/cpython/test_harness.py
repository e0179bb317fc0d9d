"""The CPython harness (tests/cpython/run.py) counts for Treadle only the tests that
ran on Treadle's loop, routes tests that make their own loop onto it, and its
`--check` fails when a recorded module did not run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.cpython import run as harness

RUN = Path(harness.__file__)


def run_harness(tmp_path: Path, *args: str) -> tuple[int, str, dict[str, Any]]:
    """Run the harness on Treadle's loop; return its status, output and --json results."""
    out = tmp_path / "results.json"
    env = dict(os.environ)
    env.pop("PYTHONASYNCIODEBUG", None)
    proc = subprocess.run(
        [sys.executable, str(RUN), "--loop", "treadle", "--json", str(out), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    results = json.loads(out.read_text()) if out.exists() else {}
    return proc.returncode, proc.stdout + proc.stderr, results


def test_passes_without_a_treadle_loop_are_not_treadles(tmp_path: Path) -> None:
    # test_protocols checks asyncio's protocol classes and never makes a loop.
    status, output, results = run_harness(tmp_path, "-m", "test_protocols")
    assert status == 0, output
    counts = results["test_protocols"]["treadle"]["counts"]
    assert counts["pass"] == 0
    assert counts["no_loop"] > 0


def test_a_tests_own_selector_loop_is_routed_onto_treadle(tmp_path: Path) -> None:
    # test_server's tests make `asyncio.SelectorEventLoop()` in new_loop().
    status, output, results = run_harness(tmp_path, "-m", "test_server", "--no-route")
    assert status == 0, output
    unrouted = results["test_server"]["treadle"]["counts"]
    assert unrouted["stdlib_only"] > 0

    status, output, results = run_harness(tmp_path, "-m", "test_server")
    assert status == 0, output
    routed = results["test_server"]["treadle"]["counts"]
    assert routed["stdlib_only"] == 0
    assert routed["pass"] == unrouted["pass"] + unrouted["stdlib_only"]


def test_a_test_loop_without_virtual_time_is_routed_onto_treadle(tmp_path: Path) -> None:
    # test_futures makes asyncio's TestLoop through new_test_loop(), with no time
    # generator; only the tests listed as reading stdlib internals stay on it.
    status, output, results = run_harness(tmp_path, "-m", "test_futures")
    assert status == 0, output
    tests = results["test_futures"]["treadle"]["tests"]
    stays = {
        test_id
        for test_id in tests
        if f"test_futures.{test_id.rsplit('.', 1)[1]}" in harness.STAY_ON_STDLIB
    }
    assert stays
    for test_id, test in tests.items():
        assert test["status"] == "pass", test_id
        assert harness.on_treadle(test) == (test_id not in stays), test_id


def test_check_fails_when_a_recorded_module_did_not_run(tmp_path: Path) -> None:
    expected = tmp_path / "expected.json"
    expected.write_text(json.dumps({"test_context": {"pass": 1}, "test_not_a_module": {"pass": 1}}))
    status, output, _ = run_harness(tmp_path, "-m", "test_context", "--check", str(expected))
    assert status == 1, output
    assert "test_not_a_module: did not run" in output


def test_a_module_that_does_not_import_is_an_error() -> None:
    result = harness.run_module("test_not_a_module", "treadle", timeout=60)
    assert result["error"].startswith("did not import: ModuleNotFoundError")


def test_every_installed_module_is_run_or_left_out() -> None:
    accounted = set(harness.MODULES) | set(harness.LEFT_OUT)
    assert set(harness.installed_modules()) <= accounted
