"""The layer rules of treadle.http, checked on the source (as trio checks its
`_core` boundary): the parser does no IO and reads no clock, and nothing in the
HTTP layer reaches up into the web framework or down into Treadle's own loop; the
server protocol uses asyncio's public API only, so it runs on any loop."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import treadle.http

HTTP_DIR = Path(treadle.http.__file__).parent
MODULES = sorted(HTTP_DIR.glob("*.py"))

# What "sans-IO" rules out for the parser (and the modules it imports).
IO_MODULES = {"asyncio", "socket", "selectors", "ssl", "time", "threading", "select", "os"}


def imported(path: Path, package: str = "treadle.http") -> set[str]:
    """Absolute names of every module `path` (in `package`) imports, relative
    ones resolved."""
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def test_the_modules_are_found() -> None:
    assert {p.name for p in MODULES} >= {
        "parser.py",
        "response_parser.py",
        "server.py",
        "writer.py",
        "headers.py",
    }


@pytest.mark.parametrize("module", ["parser.py", "response_parser.py", "headers.py", "errors.py"])
def test_the_parser_does_no_io(module: str) -> None:
    names = imported(HTTP_DIR / module)
    top = {name.split(".")[0] for name in names}
    assert not top & IO_MODULES, f"{module} imports {top & IO_MODULES}"
    # ... nor through a sibling that does. The response parser shares the
    # request parser's grammar, which is held to the same rule here.
    siblings = {
        n.split(".")[2] for n in names if n.startswith("treadle.http.") and n.count(".") >= 2
    }
    allowed = {"errors", "headers", "_speedups"}
    if module == "response_parser.py":
        allowed.add("parser")
    assert siblings <= allowed, siblings


def test_the_parsers_c_fast_path_does_no_io() -> None:
    # _speedups.c, the parser's optional C fast path, is held to the same rule:
    # it includes nothing but Python's API and the C string functions.
    source = (HTTP_DIR / "_speedups.c").read_text()
    includes = {line.split()[1] for line in source.splitlines() if line.startswith("#include")}
    assert includes == {"<Python.h>", "<stdint.h>", "<string.h>"}, includes


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_http_imports_neither_web_nor_loop(path: Path) -> None:
    for name in imported(path):
        if name == "treadle" or name.startswith("treadle."):
            assert name.startswith("treadle.http"), f"{path.name} imports {name}"
