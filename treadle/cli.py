"""The `treadle` command (also `python -m treadle`).

For now it has one job: `treadle demo` (the default) runs the seed's coroutine
programs from `examples/` on Treadle's loop, each in its own interpreter, so a
new user sees generator coroutines, `@coroutine`/`yield from` and async/await
working on Python 3.11+.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

__all__ = ["main"]

SEED_PROGRAMS = [
    ("A generator as a coroutine (plain Python, no loop)", "seed_1_generator.py"),
    ("A generator-based coroutine on the event loop", "seed_2_coroutine.py"),
    ("Two coroutines on one thread", "seed_3_two_coroutines.py"),
    ("async/await", "seed_4_async_await.py"),
]


def _find_examples(start: Path) -> Path | None:
    for folder in (start, *start.parents):
        candidate = folder / "examples"
        if (candidate / SEED_PROGRAMS[0][1]).is_file():
            return candidate
    return None


def demo(examples: Path | None) -> int:
    """Run the seed's programs 1-4, printing each one's output under a title."""
    folder = examples or _find_examples(Path.cwd()) or _find_examples(Path(__file__).parent)
    if folder is None:
        print(
            "treadle demo: no examples/ folder found; run it from a Treadle checkout",
            file=sys.stderr,
        )
        return 2
    env = dict(os.environ)
    # The examples import treadle: make sure they find this one.
    package_root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    for number, (title, name) in enumerate(SEED_PROGRAMS, 1):
        print(f"== {number}. {title} ({name})", flush=True)
        result = subprocess.run([sys.executable, str(folder / name)], env=env, check=False)
        if result.returncode != 0:
            return result.returncode
        print(flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the chosen command."""
    parser = argparse.ArgumentParser(prog="treadle", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command")
    demo_cmd = commands.add_parser("demo", help="run the seed's coroutine programs (default)")
    demo_cmd.add_argument("--examples", type=Path, default=None, help="the examples folder")
    args = parser.parse_args(argv)
    # argparse rejects unknown commands itself; "demo" is also the default.
    return demo(getattr(args, "examples", None))
