"""The CPython harness (tests/cpython/run.py) counts for Treadle only the tests that
ran on Treadle's loop, and its `--check` fails when a recorded module did not run."""

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
