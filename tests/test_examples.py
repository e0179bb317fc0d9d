"""The seed's programs 1-4 run from examples/ with the output the seed shows."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

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
