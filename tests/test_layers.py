"""The floors of ../shared/ARCHITECTURE.md, checked on the source (as trio
checks its `_core` boundary): each layer imports only from the floors below
it, and the floor-2 siblings (the framework, the ASGI and WSGI adapters, the
client to come) import nothing from each other."""

from __future__ import annotations

from pathlib import Path

import pytest

import treadle
from tests.http.test_layers import imported

ROOT = Path(treadle.__file__).parent

# What each part may import from treadle (its own modules always).
# treadle.runners is the package's entry (new_event_loop), which run_app uses.
ALLOWED: dict[str, set[str]] = {
    "loop": set(),
    "http": set(),  # tests/http/test_layers.py holds it to itself
    "websocket": {"treadle.http.headers"},
    "web": {"treadle.http", "treadle.websocket", "treadle.runners"},
    "asgi.py": {"treadle.http", "treadle.websocket"},
    "wsgi.py": {"treadle.http"},
}


def sources(part: str) -> list[tuple[Path, str]]:
    path = ROOT / part
    if path.is_dir():
        return [(p, f"treadle.{part}") for p in sorted(path.glob("*.py"))]
    return [(path, "treadle")]


@pytest.mark.parametrize("part", sorted(ALLOWED))
def test_each_part_imports_only_from_below(part: str) -> None:
    own = "treadle." + part.removesuffix(".py")
    allowed = ALLOWED[part]
    for path, package in sources(part):
        for name in imported(path, package):
            if not name.startswith("treadle."):
                continue
            if name == own or name.startswith(own + "."):
                continue
            assert any(name == a or name.startswith(a + ".") for a in allowed), (
                f"{path.relative_to(ROOT)} imports {name}"
            )


def test_the_floor_2_siblings_do_not_import_each_other() -> None:
    siblings = {"treadle.web", "treadle.asgi", "treadle.wsgi", "treadle.client"}
    for part in ("web", "asgi.py", "wsgi.py"):
        own = "treadle." + part.removesuffix(".py")
        for path, package in sources(part):
            for name in imported(path, package):
                for other in siblings - {own}:
                    assert not (name == other or name.startswith(other + ".")), (
                        f"{path.relative_to(ROOT)} imports {name}"
                    )
