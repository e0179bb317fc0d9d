"""bench/ws.py and its C tools, through real processes and sockets.

The load generator (bench/ws_load.c) is only worth its figures if it
checks what it counts: it is run against the C echo server
(bench/ws_echo.c) and against a deliberately wrong echo server, which it
must refuse, each wrong way with its own message. Then the script itself
runs end to end against Treadle and the C echo server. Nothing here
measures speed.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="the C tools need gcc")


def _bench_ws() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_ws", ROOT / "bench" / "ws.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench_ws() -> ModuleType:
    return _bench_ws()


@pytest.fixture(scope="module")
def tools(bench_ws: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(ws_load, ws_echo), compiled the way bench/ws.py compiles them."""
    build_dir = tmp_path_factory.mktemp("ws-build")
    gcc = shutil.which("gcc")
    assert gcc is not None
    return (
        bench_ws.build(bench_ws.LOAD_SOURCE, build_dir, gcc),
        bench_ws.build(bench_ws.ECHO_SOURCE, build_dir, gcc),
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _load(binary: Path, port: int, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [str(binary), "--port", str(port), "--seconds", "0.3", "--warmup", "0.1", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


@pytest.fixture
def c_echo(tools: tuple[Path, Path]) -> Iterator[int]:
    port = _free_port()
    proc = subprocess.Popen([str(tools[1]), "--port", str(port)])
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                proc.poll()
                assert proc.returncode is None, "ws_echo exited"
                threading.Event().wait(0.02)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.parametrize(
    ("size", "binary"),
    [(32, False), (16384, True), (0, False), (125, True), (126, False), (70000, True)],
)
def test_generator_against_the_c_echo_server(
    tools: tuple[Path, Path], c_echo: int, size: int, binary: bool
) -> None:
    """Every length form (7-bit, 16-bit at its edge, 64-bit), text and binary:
    round trips counted, every payload verified, every connection closed by
    the server after the close handshake."""
    extra = ["--connections", "4", "--size", str(size)] + (["--binary"] if binary else [])
    result = _load(tools[0], c_echo, *extra)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["messages"] > 0
    assert report["msgs_per_s"] > 0
    assert report["verified"] >= report["messages"]
    assert report["clean_closes"] == 4
    assert report["control_frames"] == 0
    assert report["opcode"] == ("binary" if binary else "text")
    assert 0 < report["p50_us"] <= report["p99_us"] <= report["max_us"] + 1


def test_c_echo_server_answers_any_key(c_echo: int) -> None:
    """ws_echo computes Sec-WebSocket-Accept (SHA-1 and base64 of its own), so
    a client with a random key, here the websockets library, is accepted."""
    from websockets.sync.client import connect

    with connect(f"ws://127.0.0.1:{c_echo}/ws", compression=None) as ws:
        for message in ("hi", "é" * 40, os.urandom(70000), b""):
            ws.send(message)
            assert ws.recv() == message


# -- a wrong echo server: the generator must notice each fault ----------------


def _read_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError
        data += chunk
    return data


def _frame(first: int, payload: bytes, key: bytes = b"") -> bytes:
    n = len(payload)
    bit = 0x80 if key else 0
    if n < 126:
        head = bytes((first, bit | n))
    elif n < 65536:
        head = bytes((first, bit | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((first, bit | 127)) + n.to_bytes(8, "big")
    if key:
        payload = bytes(b ^ key[i & 3] for i, b in enumerate(payload))
    return head + key + payload


def _faulty_server(listener: socket.socket, fault: str, at: int) -> None:
    """Serve one connection: echo right until message `at`, then commit `fault`."""
    conn, _ = listener.accept()
    with conn:
        head = b""
        while b"\r\n\r\n" not in head:
            head += conn.recv(4096)
        key = next(
            line.split(b":", 1)[1].strip()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        )
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        if fault == "wrong-accept":
            accept = base64.b64encode(hashlib.sha1(key).digest())
        answer = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        answer += b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n"
        if fault == "extension":
            answer += b"Sec-WebSocket-Extensions: permessage-deflate\r\n"
        conn.sendall(answer + b"\r\n")
        previous = b""
        count = 0
        try:
            while True:
                first, second = _read_exactly(conn, 2)
                length = second & 0x7F
                if length == 126:
                    length = int.from_bytes(_read_exactly(conn, 2), "big")
                elif length == 127:
                    length = int.from_bytes(_read_exactly(conn, 8), "big")
                mask = _read_exactly(conn, 4)
                payload = bytes(b ^ mask[i & 3] for i, b in enumerate(_read_exactly(conn, length)))
                if first & 0x0F == 8:
                    conn.sendall(_frame(0x88, payload))
                    return
                count += 1
                echo = _frame(first, payload)
                if count == at:
                    if fault == "flip":  # one byte past the sequence number
                        echo = _frame(first, payload[:20] + bytes([payload[20] ^ 1]) + payload[21:])
                    elif fault == "stale":
                        echo = _frame(first, previous)
                    elif fault == "opcode":
                        echo = _frame(first ^ 0x03, payload)  # text <-> binary
                    elif fault == "short":
                        echo = _frame(first, payload[:-1])
                    elif fault == "masked":
                        echo = _frame(first, payload, key=b"\x01\x02\x03\x04")
                    elif fault == "close":
                        echo = _frame(0x88, (1011).to_bytes(2, "big"))
                    elif fault == "ping-first":
                        echo = _frame(0x89, b"are you there") + echo
                previous = payload
                conn.sendall(echo)
        except (ConnectionError, OSError):
            return


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ("flip", "differs from what was sent"),
        ("stale", "another sequence number"),
        ("opcode", "a frame starting 0x82"),
        ("short", "an echo of 31 bytes"),
        ("masked", "the server sent a masked frame"),
        ("close", "the server sent a close frame (code 1011)"),
        ("wrong-accept", "no right Sec-WebSocket-Accept"),
        ("extension", "agreed an extension none was offered"),
    ],
)
def test_generator_refuses_a_wrong_echo(
    tools: tuple[Path, Path], fault: str, expected: str
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        server = threading.Thread(target=_faulty_server, args=(listener, fault, 3), daemon=True)
        server.start()
        result = _load(tools[0], port, "--connections", "1", "--size", "32")
        server.join(timeout=10)
    assert result.returncode == 1, result.stdout
    assert expected in result.stderr
    assert result.stdout == ""


def test_generator_skips_and_counts_pings(tools: tuple[Path, Path]) -> None:
    """A ping before an echo is not a fault: it is skipped and counted."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        server = threading.Thread(
            target=_faulty_server, args=(listener, "ping-first", 3), daemon=True
        )
        server.start()
        result = _load(tools[0], port, "--connections", "1", "--size", "32")
        server.join(timeout=10)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["control_frames"] == 1
    assert report["clean_closes"] == 1


def test_check_echo_notices_a_wrong_echo(bench_ws: ModuleType) -> None:
    """bench/ws.py's own readiness check compares the echo too."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        server = threading.Thread(target=_faulty_server, args=(listener, "flip", 2), daemon=True)
        server.start()
        problems = bench_ws.check_echo(port, timeout=10)
        server.join(timeout=10)
    assert problems == ["opcode 2, 16384 bytes: echoed a frame starting 0x82 of 16384 bytes, "
                        "not the same bytes"]  # fmt: skip


# -- the script, end to end -------------------------------------------------------


def test_ws_script_against_treadle_and_the_c_echo_server(tmp_path: Path) -> None:
    out = tmp_path / "ws.json"
    env = dict(os.environ)
    env.pop("PYTHONASYNCIODEBUG", None)
    cmd = [
        sys.executable, str(ROOT / "bench" / "ws.py"), "--only", "treadle", "--only", "c-echo",
        "--seconds", "0.3", "--warmup", "0.1", "--connections", "8", "--cpu", "-1",
        "--build-dir", str(tmp_path / "build"), "--json", str(out),
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text())
    assert set(report["results"]) == {"treadle", "c-echo"}
    for name, record in report["results"].items():
        assert "error" not in record, (name, record)
        for scenario in ("text32", "binary16k"):
            run = record[scenario]
            assert run["messages"] > 0, (name, scenario)
            assert run["verified"] >= run["messages"]
            assert run["clean_closes"] == 8, (name, scenario)
    assert "c-echo (generator ceiling)" in result.stdout
    assert "generator check (text32)" in result.stdout
    assert "target: Treadle >=" not in result.stdout  # no aiohttp nor websockets in this run
