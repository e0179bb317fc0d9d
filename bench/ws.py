"""WebSocket echo benchmark: Treadle against aiohttp, websockets and picows, in one run.

    .venv/bin/pip install -e '.[bench]'       # the peers: aiohttp, uvloop, websockets, picows
    .venv/bin/python bench/ws.py              # every server installed, both scenarios
    .venv/bin/python bench/ws.py --only treadle --only aiohttp --seconds 3
    .venv/bin/python bench/ws.py --repeat 3 --json bench-ws.json

Each server runs as its own process pinned to one core (`--cpu`, default 0)
and the load generator, `bench/ws_load.c`, runs pinned to the other
(`--load-cpu`, default 1). The generator is C, compiled here with the
system's gcc into a cache directory outside the repository (`--build-dir`,
default under the temporary directory, one binary per source hash). For
each server: start it, poll it until it answers the WebSocket handshake
(and check that it echoes a text and a binary message right, and agrees no
extension: compression is off on both sides), then measure each scenario
`--repeat` times (the best run counts: the least disturbed by the rest of
the machine), then stop it (SIGTERM to its process group, SIGKILL if it
lingers).

The generator (see its header comment) opens `--connections` (64)
connections and keeps exactly one message in flight on each: a masked frame
out, the whole echo back, checked byte for byte, the next one out. Each run
has its own connections and a `--warmup` of its own before the measured
`--seconds`. Printed: round trips per second (msgs/s), p50 and p99 of a
round trip, the share of its core the generator was busy (user + system
time over the measured wall time), and each server's ratio to Treadle.

Scenarios: text32 (a 32-byte text message) and binary16k (a 16 KiB binary
message).

Servers (apps in bench/apps/, all on 127.0.0.1, one process):
- treadle: `treadle run bench.apps.ws_treadle_app:app --workers 1`,
  `web.WebSocketResponse(compress=False)` echoing in `async for`.
- treadle-pure: the same with TREADLE_NO_EXTENSIONS=1 (Python only, no C
  fast path).
- aiohttp: the same handler on aiohttp, `web.run_app`, stdlib loop.
- aiohttp-uvloop: the same on uvloop.
- websockets: `websockets.asyncio.server.serve` echo, `compression=None`,
  `ping_interval=None`, stdlib loop.
- picows: picows's `ws_create_server` with an echoing `WSListener`
  (Cython; on uvloop when it is installed): the ceiling for Python.
- c-echo: `bench/ws_echo.c`, one thread, epoll, no Python: the generator's
  ceiling. If it is well above every other server, the generator is not
  what limits them (the output says by how much, and warns when it is not
  at least 1.2x the fastest Python server).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# `python bench/ws.py` puts bench/ first on sys.path, where bench/http.py
# would shadow the stdlib's `http` package for anything imported later.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

HOST = "127.0.0.1"
WS_PATH = "/ws"
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
LOAD_SOURCE = HERE / "ws_load.c"
ECHO_SOURCE = HERE / "ws_echo.c"
CFLAGS = ["-O2", "-Wall", "-Wextra"]
# The targets (Treadle against a peer, text32, in the same run).
TARGETS = {"aiohttp": 1.1, "websockets": 1.5}
CEILING_MARGIN = 1.2


# -- building the C tools ------------------------------------------------------------------------


def gcc_version(gcc: str) -> str:
    out = subprocess.run([gcc, "--version"], capture_output=True, text=True, check=True)
    return out.stdout.splitlines()[0].strip()


def build(source: Path, build_dir: Path, gcc: str) -> Path:
    """Compile `source` once per (source, compiler, flags): the binary's name
    carries their hash, so an edited source is rebuilt and an unchanged one
    is not."""
    digest = hashlib.sha256(source.read_bytes())
    digest.update(gcc_version(gcc).encode())
    digest.update(" ".join(CFLAGS).encode())
    binary = build_dir / f"{source.stem}-{digest.hexdigest()[:16]}"
    if binary.exists():
        return binary
    build_dir.mkdir(parents=True, exist_ok=True)
    partial = binary.with_name(binary.name + f".{os.getpid()}.tmp")
    proc = subprocess.run(
        [gcc, *CFLAGS, "-o", str(partial), str(source)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        partial.unlink(missing_ok=True)
        raise RuntimeError(f"gcc failed on {source.name}:\n{proc.stderr}")
    partial.replace(binary)  # atomic: a concurrent run sees the old name or the whole binary
    return binary


# -- the servers ---------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    title: str
    requires: tuple[str, ...]
    command: Callable[[int, int], list[str]]
    env: dict[str, str] | None = None


def _module(module: str, *extra: str) -> Callable[[int, int], list[str]]:
    def command(port: int, backlog: int) -> list[str]:
        return [
            sys.executable, "-m", module, "--host", HOST, "--port", str(port),
            "--backlog", str(backlog), *extra,
        ]  # fmt: skip

    return command


def _treadle(port: int, backlog: int) -> list[str]:
    return [
        sys.executable, "-m", "treadle", "run", "bench.apps.ws_treadle_app:app",
        "--host", HOST, "--port", str(port), "--workers", "1", "--backlog", str(backlog),
    ]  # fmt: skip


def all_servers(echo_binary: Path | None) -> list[Server]:
    picows_loop = "uvloop" if importlib.util.find_spec("uvloop") else "stdlib loop"
    servers = [
        Server("treadle", "treadle run, one worker, web.WebSocketResponse", ("treadle",), _treadle),
        Server(
            "treadle-pure",
            "the same, TREADLE_NO_EXTENSIONS=1 (pure Python)",
            ("treadle",),
            _treadle,
            env={"TREADLE_NO_EXTENSIONS": "1"},
        ),
        Server(
            "aiohttp",
            "aiohttp web.WebSocketResponse, stdlib loop",
            ("aiohttp",),
            _module("bench.apps.ws_aiohttp_app"),
        ),
        Server(
            "aiohttp-uvloop",
            "aiohttp web.WebSocketResponse, uvloop",
            ("aiohttp", "uvloop"),
            _module("bench.apps.ws_aiohttp_app", "--uvloop"),
        ),
        Server(
            "websockets",
            "websockets.asyncio.server.serve, stdlib loop",
            ("websockets",),
            _module("bench.apps.ws_websockets_app"),
        ),
        Server(
            "picows",
            f"picows ws_create_server (Cython), {picows_loop}: the Python ceiling",
            ("picows",),
            _module("bench.apps.ws_picows_app", *(["--uvloop"] if picows_loop == "uvloop" else [])),
        ),
    ]
    if echo_binary is not None:
        servers.append(
            Server(
                "c-echo",
                "bench/ws_echo.c, C, epoll, one thread: the generator's ceiling",
                (),
                lambda port, backlog: [str(echo_binary), "--host", HOST, "--port", str(port)],
            )
        )
    return servers


SERVER_NAMES = [
    "treadle", "treadle-pure", "aiohttp", "aiohttp-uvloop", "websockets", "picows", "c-echo",
]  # fmt: skip
DISTRIBUTIONS = ["aiohttp", "uvloop", "websockets", "picows", "aiofastnet"]


# -- starting, checking and stopping a server ------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _recv_exactly(sock: socket.socket, n: int, buffered: bytearray) -> bytes:
    while len(buffered) < n:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        buffered += chunk
    out = bytes(buffered[:n])
    del buffered[:n]
    return out


def _send_frame(sock: socket.socket, opcode: int, payload: bytes) -> None:
    key = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    masked = bytes(b ^ key[i & 3] for i, b in enumerate(payload))
    sock.sendall(head + key + masked)


def _read_frame(sock: socket.socket, buffered: bytearray) -> tuple[int, bytes]:
    first, second = _recv_exactly(sock, 2, buffered)
    if second & 0x80:
        raise ValueError("the server sent a masked frame")
    length = second & 0x7F
    if length == 126:
        length = int.from_bytes(_recv_exactly(sock, 2, buffered), "big")
    elif length == 127:
        length = int.from_bytes(_recv_exactly(sock, 8, buffered), "big")
    return first, _recv_exactly(sock, length, buffered)


def check_echo(port: int, timeout: float) -> list[str]:
    """One connection: the handshake (101, the right accept key, no
    extension), a text and a binary message echoed whole and unchanged, and
    the close handshake. Raises OSError while the server does not listen."""
    problems = []
    key = base64.b64encode(os.urandom(16)).decode()
    accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(
            f"GET {WS_PATH} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        data = bytearray()
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed before the handshake's answer")
            data += chunk
        head, _, rest = bytes(data).partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        if lines[0].split()[1:2] != ["101"]:
            return [f"the handshake was answered {lines[0]!r}"]
        fields = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        if fields.get("sec-websocket-accept") != accept:
            problems.append(f"Sec-WebSocket-Accept {fields.get('sec-websocket-accept')!r}")
        if "sec-websocket-extensions" in fields:
            problems.append(f"an extension was agreed: {fields['sec-websocket-extensions']!r}")
        buffered = bytearray(rest)
        for opcode, payload in (
            (1, "écho ✓ 32 bytes of text....".encode()),
            (2, os.urandom(16384)),
        ):
            _send_frame(sock, opcode, payload)
            first, echoed = _read_frame(sock, buffered)
            if first != 0x80 | opcode or echoed != payload:
                problems.append(
                    f"opcode {opcode}, {len(payload)} bytes: echoed a frame starting "
                    f"{first:#04x} of {len(echoed)} bytes"
                    + ("" if echoed == payload else ", not the same bytes")
                )
        _send_frame(sock, 8, (1000).to_bytes(2, "big"))
        first, _ = _read_frame(sock, buffered)
        if first & 0x0F != 8:
            problems.append(f"the close frame was answered with a frame starting {first:#04x}")
    return problems


def exited(proc: subprocess.Popen[bytes]) -> bool:
    """Whether the process has exited, without reaping it (its pid stays ours until wait())."""
    if proc.returncode is not None:
        return True
    return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def wait_ready(proc: subprocess.Popen[bytes], port: int, timeout: float) -> list[str]:
    """Poll the server with `check_echo` until it answers; what differs from a right echo."""
    deadline = time.monotonic() + timeout
    while True:
        if exited(proc):
            raise RuntimeError("the server exited before answering")
        try:
            return check_echo(port, timeout=5.0)
        except (OSError, ValueError, IndexError):
            if time.monotonic() > deadline:
                raise RuntimeError(f"no answer on port {port} within {timeout:.0f}s") from None
            time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    """SIGTERM the server's process group; SIGKILL what is left."""
    if proc.returncode is None:
        # The leader is not reaped yet, so its pid is still its process group's id.
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + grace
        while not exited(proc) and time.monotonic() < deadline:
            time.sleep(0.05)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()


def tail(log: IO[bytes], lines: int = 15) -> str:
    log.seek(0)
    text = log.read().decode(errors="replace").strip().splitlines()
    return "\n".join("    | " + line for line in text[-lines:])


def pin(cmd: list[str], cpu: int | None) -> list[str]:
    return cmd if cpu is None else ["taskset", "-c", str(cpu), *cmd]


# -- the load generator --------------------------------------------------------------------------


@dataclass
class Scenario:
    name: str
    size: int
    binary: bool

    def describe(self, connections: int) -> str:
        kind = "binary" if self.binary else "text"
        return f"echo round trips of a {self.size:,}-byte {kind} message, {connections} connections"


def run_load(
    binary: Path,
    port: int,
    scenario: Scenario,
    args: argparse.Namespace,
    cpu: int | None,
) -> dict[str, Any]:
    """One run of the generator: its JSON result, or {"error": why}."""
    cmd = [
        str(binary), "--host", HOST, "--port", str(port), "--path", WS_PATH,
        "--connections", str(args.connections), "--size", str(scenario.size),
        "--seconds", f"{args.seconds:g}", "--warmup", f"{args.warmup:g}",
    ]  # fmt: skip
    if scenario.binary:
        cmd.append("--binary")
    try:
        proc = subprocess.run(
            pin(cmd, cpu), capture_output=True, text=True, timeout=args.seconds + args.warmup + 60
        )
    except subprocess.TimeoutExpired:
        return {"error": "the load generator did not finish"}
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip() or f"exit status {proc.returncode}")[-500:]}
    try:
        result: dict[str, Any] = json.loads(proc.stdout)
    except ValueError:
        return {"error": f"no result from the load generator: {proc.stdout[:200]!r}"}
    return result


def measure_server(
    server: Server,
    scenarios: list[Scenario],
    args: argparse.Namespace,
    env: dict[str, str],
    load_binary: Path,
    cpu: int | None,
    load_cpu: int | None,
) -> dict[str, Any]:
    port = free_port()
    cmd = server.command(port, args.backlog)
    server_env = {**env, **(server.env or {})}
    prefix = "".join(f"{k}={v} " for k, v in (server.env or {}).items())
    record: dict[str, Any] = {"title": server.title, "command": prefix + shlex.join(pin(cmd, cpu))}
    print(f"\n[{server.name}] {server.title}", flush=True)
    print(f"  $ {record['command']}", flush=True)
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            pin(cmd, cpu), cwd=ROOT, env=server_env, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            try:
                problems = wait_ready(proc, port, timeout=60.0)
            except (RuntimeError, OSError, ValueError) as exc:
                record["error"] = str(exc)
                print(f"  FAILED to start: {exc}\n{tail(log)}", flush=True)
                return record
            if problems:
                record["error"] = "wrong echo: " + "; ".join(problems)
                print(f"  FAILED, the echo is wrong: {'; '.join(problems)}", flush=True)
                return record
            for scenario in scenarios:
                runs = [
                    run_load(load_binary, port, scenario, args, load_cpu)
                    for _ in range(args.repeat)
                ]
                good = [r for r in runs if "error" not in r]
                for number, run in enumerate(runs, 1):
                    which = f"{scenario.name} run {number}" if len(runs) > 1 else scenario.name
                    if "error" in run:
                        print(f"  ERROR ({which}): {run['error']}", flush=True)
                        continue
                    if run["clean_closes"] < args.connections:
                        print(
                            f"  note ({which}): {args.connections - run['clean_closes']} "
                            "connections were not closed by the server within 3 s of our "
                            "close frame",
                            flush=True,
                        )
                    if run["control_frames"]:
                        print(
                            f"  note ({which}): the server sent {run['control_frames']} "
                            "pings or pongs (skipped)",
                            flush=True,
                        )
                if good:
                    best = dict(max(good, key=lambda r: r["msgs_per_s"]))
                    best["runs_msgs_per_s"] = [r.get("msgs_per_s") for r in runs]
                    record[scenario.name] = best
                    line = f"  {scenario.name:<10} {best['msgs_per_s']:>10,.0f} msgs/s"
                    line += f"  p50 {fmt_us(best['p50_us'])}  p99 {fmt_us(best['p99_us'])}"
                    line += f"  load CPU {best['load_cpu']:.0%}"
                    if args.repeat > 1:
                        line += (
                            "  (runs: "
                            + ", ".join(
                                "failed" if "error" in r else f"{r['msgs_per_s']:,.0f}"
                                for r in runs
                            )
                            + ")"
                        )
                    print(line, flush=True)
                if exited(proc):
                    record["error"] = f"the server died during {scenario.name}"
                    print(f"  FAILED: the server died\n{tail(log)}", flush=True)
                    break
        finally:
            stop(proc)
    return record


# -- the report ------------------------------------------------------------------------------------


def fmt_us(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 1000:
        return f"{value / 1000:.2f}ms"
    return f"{value:.0f}us"


def print_table(scenario: Scenario, results: dict[str, dict[str, Any]], connections: int) -> None:
    rows = {name: r[scenario.name] for name, r in results.items() if scenario.name in r}
    if not rows:
        return
    print(f"\n{scenario.name}: {scenario.describe(connections)}")
    base = rows.get("treadle", {}).get("msgs_per_s") or 0.0
    print(
        f"  {'server':<28}{'msgs/s':>10}{'p50':>10}{'p99':>10}{'load CPU':>10}"
        f"{'x Treadle':>11}{'Treadle/x':>11}"
    )
    for name, row in rows.items():
        rate = row["msgs_per_s"]
        vs = f"{rate / base:.2f}x" if base and rate else "-"
        inverse = f"{base / rate:.2f}x" if base and rate else "-"
        label = "c-echo (generator ceiling)" if name == "c-echo" else name
        print(
            f"  {label:<28}{rate:>10,.0f}{fmt_us(row['p50_us']):>10}{fmt_us(row['p99_us']):>10}"
            f"{row['load_cpu']:>10.0%}{vs:>11}{inverse:>11}"
        )


def ceiling_check(scenario: Scenario, results: dict[str, dict[str, Any]]) -> str | None:
    """Whether the generator outran every server: c-echo against the fastest other one."""
    rows = {name: r[scenario.name] for name, r in results.items() if scenario.name in r}
    ceiling = rows.get("c-echo")
    others = {name: row for name, row in rows.items() if name != "c-echo"}
    if ceiling is None or not others:
        return None
    fastest = max(others, key=lambda name: others[name]["msgs_per_s"])
    ratio = ceiling["msgs_per_s"] / others[fastest]["msgs_per_s"]
    busiest = max(others, key=lambda name: others[name]["load_cpu"])
    text = (
        f"  generator check ({scenario.name}): the C echo server took "
        f"{ceiling['msgs_per_s']:,.0f} msgs/s from it, {ratio:.2f}x the fastest other server "
        f"({fastest}); against the other servers the generator was busy at most "
        f"{others[busiest]['load_cpu']:.0%} of its core ({busiest})"
    )
    if ratio < CEILING_MARGIN:
        text += (
            f"\n  WARNING: less than {CEILING_MARGIN}x: the generator may be what limits "
            f"{fastest}'s figure"
        )
    return text


def target_lines(scenario: Scenario, results: dict[str, dict[str, Any]]) -> list[str]:
    rows = {name: r[scenario.name] for name, r in results.items() if scenario.name in r}
    treadle = rows.get("treadle")
    if treadle is None:
        return []
    lines = []
    for peer, target in TARGETS.items():
        if peer in rows:
            ratio = treadle["msgs_per_s"] / rows[peer]["msgs_per_s"]
            verdict = "met" if ratio >= target else "NOT met"
            lines.append(f"  target: Treadle >= {target}x {peer}: {ratio:.2f}x, {verdict}")
    return lines


def raise_nofile(needed: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, needed)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def versions(gcc: str) -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for dist in DISTRIBUTIONS:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    out["gcc"] = gcc_version(gcc)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", action="append", choices=SERVER_NAMES, help="repeatable")
    parser.add_argument("--seconds", type=float, default=5.0, help="per measured run")
    parser.add_argument("--warmup", type=float, default=1.0, help="before each measured run")
    parser.add_argument("--repeat", type=int, default=1, help="measured runs; the best counts")
    parser.add_argument("--connections", type=int, default=64, help="each with one message")
    parser.add_argument("--backlog", type=int, default=1024, help="the servers' listen backlog")
    parser.add_argument("--cpu", type=int, default=0, help="the server's CPU (-1: no pinning)")
    parser.add_argument("--load-cpu", type=int, default=1, help="the load generator's CPU")
    parser.add_argument(
        "--build-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / f"treadle-bench-{os.getuid()}",
        help="where the C tools are compiled (default: %(default)s)",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results here")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.connections < 1 or args.seconds <= 0 or args.warmup < 0:
        parser.error("--repeat and --connections must be positive, --seconds too")

    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        print("bench/ws.py needs gcc (apt-get install gcc) for its load generator", file=sys.stderr)
        return 2
    try:
        load_binary = build(LOAD_SOURCE, args.build_dir, gcc)
        echo_binary = build(ECHO_SOURCE, args.build_dir, gcc)
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 2
    pinning = args.cpu >= 0 and shutil.which("taskset") is not None
    cpu = args.cpu if pinning else None
    load_cpu = args.load_cpu if pinning else None
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("PYTHONASYNCIODEBUG", None)
    env.pop("TREADLE_NO_EXTENSIONS", None)
    nofile = raise_nofile(args.connections + 1000)

    info = versions(gcc)
    print(
        f"Python {info['python']}; servers on CPU {cpu}, the load generator on CPU {load_cpu}; "
        f"{args.seconds:g}s runs after a {args.warmup:g}s warm-up each, best of {args.repeat}; "
        f"{args.connections} connections, one message in flight on each"
    )
    print("peers: " + ", ".join(f"{k} {v}" for k, v in info.items() if k != "python"))
    print(
        f"load generator: {load_binary}; open files {nofile}; "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )

    scenarios = [Scenario("text32", 32, False), Scenario("binary16k", 16384, True)]
    wanted = args.only or SERVER_NAMES
    skipped: dict[str, str] = {}
    results: dict[str, dict[str, Any]] = {}
    for server in all_servers(echo_binary):
        if server.name not in wanted:
            continue
        missing = [m for m in server.requires if importlib.util.find_spec(m) is None]
        if missing:
            skipped[server.name] = "not installed: " + ", ".join(missing)
            print(f"\n[{server.name}] skipped, {skipped[server.name]}", flush=True)
            continue
        results[server.name] = measure_server(
            server, scenarios, args, env, load_binary, cpu, load_cpu
        )

    for scenario in scenarios:
        print_table(scenario, results, args.connections)
        check = ceiling_check(scenario, results)
        if check:
            print(check)
        for line in target_lines(scenario, results) if scenario.name == "text32" else []:
            print(line)
    for name, record in results.items():
        if "error" in record:
            print(f"error ({name}): {record['error']}")
    for name, why in skipped.items():
        print(f"skipped ({name}): {why}")

    if args.json:
        report = {
            "versions": info,
            "settings": {
                "seconds": args.seconds,
                "warmup": args.warmup,
                "repeat": args.repeat,
                "connections": args.connections,
                "cpu": cpu,
                "load_cpu": load_cpu,
                "load_average": os.getloadavg(),
            },
            "scenarios": {s.name: s.describe(args.connections) for s in scenarios},
            "results": results,
            "skipped": skipped,
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
