"""The layer rules of treadle.websocket, checked on the source: the codec
(handshake, frames, deflate, codec) does no IO and reads no clock; only the
asyncio connection uses asyncio; the package reaches into the HTTP layer for
its header multi-dict alone, and never up into the framework, the client or
the adapters, nor down into Treadle's own loop."""

from __future__ import annotations

from pathlib import Path

import pytest

import treadle.websocket
from tests.http.test_layers import imported

WS_DIR = Path(treadle.websocket.__file__).parent
MODULES = sorted(WS_DIR.glob("*.py"))
SANS_IO = ["handshake.py", "frames.py", "deflate.py", "codec.py"]
IO_MODULES = {"asyncio", "socket", "selectors", "ssl", "time", "threading", "select"}


def test_the_modules_are_found() -> None:
    assert {p.name for p in MODULES} >= {*SANS_IO, "connection.py"}


@pytest.mark.parametrize("module", SANS_IO)
def test_the_codec_does_no_io(module: str) -> None:
    names = imported(WS_DIR / module, "treadle.websocket")
    top = {name.split(".")[0] for name in names}
    assert not top & IO_MODULES, f"{module} imports {top & IO_MODULES}"
    # `os` only for os.urandom (masking keys, handshake keys) and os.environ.
    siblings = {
        n.split(".")[2] for n in names if n.startswith("treadle.websocket.") and n.count(".") >= 2
    }
    assert "connection" not in siblings


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_websocket_imports_only_the_http_headers(path: Path) -> None:
    for name in imported(path, "treadle.websocket"):
        if name == "treadle" or name.startswith("treadle."):
            assert name.startswith(("treadle.websocket", "treadle.http.headers")), (
                f"{path.name} imports {name}"
            )


def test_the_c_fast_path_does_no_io() -> None:
    # _speedups.c, the codec's optional masking, is held to the same rule: it
    # includes nothing but Python's API and the C string functions.
    source = (WS_DIR / "_speedups.c").read_text()
    includes = {line.split()[1] for line in source.splitlines() if line.startswith("#include")}
    assert includes == {"<Python.h>", "<stdint.h>", "<string.h>"}, includes
