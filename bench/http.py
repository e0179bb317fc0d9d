"""HTTP server benchmark: Treadle's web server against aiohttp, uvicorn and granian, in one run.

    .venv/bin/pip install -e '.[bench]'          # the peers: uvloop, aiohttp, uvicorn, granian
    .venv/bin/python bench/http.py               # every server installed, both scenarios
    .venv/bin/python bench/http.py --only treadle --only granian --seconds 3 --skip-10k
    .venv/bin/python bench/http.py --repeat 3 --json bench-http.json
    .venv/bin/python bench/http.py --skip-10k --processes 3 --repeat 3   # the median of 3 processes

Each server runs as its own process pinned to one core (`--cpu`, default 0)
and `wrk` (the Debian package) runs pinned to the other (`--load-cpu`, default
1). For each server: start it, poll it with a socket until it answers (and
check that it answers the same bytes as the others), warm up with wrk, then
measure each scenario `--repeat` times (the best run counts: the least
disturbed by the rest of the machine), then stop it (SIGTERM, SIGKILL if it
lingers). With `--processes N` all that is done N times per server, round-robin
over the servers, and the process with the median req/s counts: one process
of a server can be several percent faster or slower than the next (memory
layout, hash seed), more than its runs differ from each other.

Scenarios:
- hello: `GET /hello/world` -> `<h1>hello, world!</h1>`, `wrk -t1 -c64 --latency`.
- sleep10k (the seed's scenario, examples/seed_5_web.py): 10,000 concurrent
  connections, each request sleeping 0.5 s in the handler; the ideal is
  connections / 0.5 = 20,000 req/s. `wrk -t2 -c10000 --timeout 10s --latency`.
  wrk opens all its connections at the start of every run, so accepting that
  storm is part of the measured seconds (connections the full listen queue
  drops retry a second later; the kernel's overflow count is printed): a
  longer `--seconds-10k` weighs it less.

Servers (apps in bench/apps/, all on 127.0.0.1, one process, access log off):
- treadle: `treadle run bench.apps.treadle_app:app` (`python -m treadle run`)
  with one worker; if that command does not exist yet, `web.run_app` from a
  small launcher (`python -m bench.apps.treadle_app`), and the output says so.
- aiohttp: `web.run_app` on the stdlib loop (`python -m bench.apps.aiohttp_app`).
- aiohttp-uvloop: the same on uvloop (`--uvloop`).
- uvicorn: `uvicorn bench.apps.asgi_app:app --loop uvloop --http httptools
  --no-access-log --log-level warning` (a bare ASGI app, no framework).
- granian: `granian --interface asgi bench.apps.asgi_app:app --workers 1
  --runtime-threads 1 --no-ws --http 1 --loop uvloop --no-access-log`, plus
  `--backpressure` = the 10k connection count: granian serves at most that
  many requests at once, by default backlog/workers, and with its default
  backlog (1024) the 10k scenario measured 1.8k req/s here.
- protocol: a bare `asyncio.Protocol` on the stdlib loop, no framework: the
  reference ceiling for a Python server (`python -m bench.apps.protocol_app`).

Every server gets `--backlog` (default: the 10k connection count; the kernel
caps it at net.core.somaxconn, printed). The open-files soft limit is raised
to the hard limit for the servers and wrk. Printed for each scenario: req/s
(2xx responses only), p50 and p99 latency, each server's ratio to Treadle and
Treadle's ratio to it, and any non-2xx responses or socket errors wrk saw.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import re
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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# `python bench/http.py` puts bench/ first on sys.path, where this file would
# shadow the stdlib's `http` package for anything imported later.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

HOST = "127.0.0.1"
NAME = "world"
EXPECTED_BODY = f"<h1>hello, {NAME}!</h1>".encode()
EXPECTED_TYPE = "text/html; charset=utf-8"
SLEEP = 0.5
TREADLE_APP = "bench.apps.treadle_app:app"
ASGI_APP = "bench.apps.asgi_app:app"


# -- the servers ------------------------------------------------------------------------------


@dataclass
class Listen:
    """Where and how a server listens, and what the 10k scenario asks of it."""

    port: int
    backlog: int
    connections_10k: int


@dataclass
class Server:
    name: str
    title: str
    requires: tuple[str, ...]
    command: Callable[[Listen], list[str]]
    note: str = ""


def _module(module: str, *extra: str) -> Callable[[Listen], list[str]]:
    def command(listen: Listen) -> list[str]:
        return [
            sys.executable, "-m", module, "--host", HOST, "--port", str(listen.port),
            "--backlog", str(listen.backlog), *extra,
        ]  # fmt: skip

    return command


def _uvicorn(listen: Listen) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", ASGI_APP, "--host", HOST, "--port", str(listen.port),
        "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning",
        "--backlog", str(listen.backlog),
    ]  # fmt: skip


def _granian_loop() -> str:
    return "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"


def _granian(listen: Listen) -> list[str]:
    return [
        sys.executable, "-m", "granian", "--interface", "asgi", ASGI_APP,
        "--host", HOST, "--port", str(listen.port), "--workers", "1", "--runtime-threads", "1",
        "--no-ws", "--http", "1", "--loop", _granian_loop(), "--no-access-log",
        "--log-level", "warning", "--backlog", str(listen.backlog),
        "--backpressure", str(max(listen.connections_10k, listen.backlog)),
    ]  # fmt: skip


def treadle_server(env: dict[str, str]) -> Server:
    """`treadle run` if the CLI has it (with the options its --help lists), else the launcher."""
    try:
        probe = subprocess.run(
            [sys.executable, "-m", "treadle", "run", "--help"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        usage = probe.stdout if probe.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        usage = ""
    if "--port" not in usage:
        return Server(
            "treadle",
            "web.run_app on Treadle's loop",
            ("treadle",),
            _module("bench.apps.treadle_app"),
            note="`treadle run` does not exist yet: fallback launcher "
            "`python -m bench.apps.treadle_app` calling web.run_app(access_log=None)",
        )

    def command(listen: Listen) -> list[str]:
        cmd = [sys.executable, "-m", "treadle", "run", TREADLE_APP]
        cmd += ["--host", HOST, "--port", str(listen.port)]
        if "--workers" in usage:
            cmd += ["--workers", "1"]
        if "--backlog" in usage:
            cmd += ["--backlog", str(listen.backlog)]
        if "--no-access-log" in usage:
            cmd += ["--no-access-log"]
        return cmd

    note = "" if "--backlog" in usage else "`treadle run` has no --backlog: its default backlog"
    return Server("treadle", "treadle run, one worker", ("treadle",), command, note=note)


def all_servers(env: dict[str, str]) -> list[Server]:
    return [
        treadle_server(env),
        Server(
            "aiohttp",
            "aiohttp web.run_app, stdlib loop",
            ("aiohttp",),
            _module("bench.apps.aiohttp_app"),
        ),
        Server(
            "aiohttp-uvloop",
            "aiohttp web.run_app, uvloop",
            ("aiohttp", "uvloop"),
            _module("bench.apps.aiohttp_app", "--uvloop"),
        ),
        Server(
            "uvicorn",
            "uvicorn, httptools + uvloop, bare ASGI",
            ("uvicorn", "httptools", "uvloop"),
            _uvicorn,
        ),
        Server("granian", f"granian ASGI, {_granian_loop()}", ("granian",), _granian),
        Server(
            "protocol",
            "bare asyncio.Protocol, stdlib loop (reference)",
            (),
            _module("bench.apps.protocol_app"),
        ),
    ]


SERVER_NAMES = ["treadle", "aiohttp", "aiohttp-uvloop", "uvicorn", "granian", "protocol"]
DISTRIBUTIONS = ["aiohttp", "uvloop", "uvicorn", "httptools", "granian"]


# -- starting, checking and stopping a server -------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def fetch(port: int, path: str, timeout: float) -> tuple[int, dict[str, str], bytes]:
    """One `GET path` on a new connection: (status, headers with lower-case names, body)."""
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        request = f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n\r\n"
        sock.sendall(request.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed before the response head")
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "-1"))
        while length < 0 or len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    return status, headers, body if length < 0 else body[:length]


def exited(proc: subprocess.Popen[bytes]) -> bool:
    """Whether the process has exited, without reaping it (its pid stays ours until wait())."""
    if proc.returncode is not None:
        return True
    return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def wait_ready(proc: subprocess.Popen[bytes], port: int, timeout: float) -> None:
    """Poll the server with `GET /hello/world` until it answers, it exits, or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        if exited(proc):
            raise RuntimeError("the server exited before answering")
        try:
            fetch(port, f"/hello/{NAME}", timeout=2.0)
            return
        except (OSError, ValueError, IndexError):
            if time.monotonic() > deadline:
                raise RuntimeError(f"no answer on port {port} within {timeout:.0f}s") from None
            time.sleep(0.05)


def check_answers(port: int) -> list[str]:
    """What differs from the expected answers of /hello/{name} and /sleep/{name}."""
    problems = []
    for path in (f"/hello/{NAME}", f"/sleep/{NAME}"):
        start = time.monotonic()
        status, headers, body = fetch(port, path, timeout=10.0)
        elapsed = time.monotonic() - start
        if status != 200:
            problems.append(f"{path}: status {status}")
        if headers.get("content-type", "").lower().replace(" ", "") != EXPECTED_TYPE.replace(
            " ", ""
        ):
            problems.append(f"{path}: Content-Type {headers.get('content-type')!r}")
        if body != EXPECTED_BODY:
            problems.append(f"{path}: body {body[:80]!r}")
        if path.startswith("/sleep/") and elapsed < SLEEP * 0.9:
            problems.append(f"{path}: answered in {elapsed:.3f}s, without sleeping {SLEEP}s")
    return problems


def stop(proc: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    """SIGTERM the server's process group; SIGKILL what is left (a hung server, workers)."""
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


# -- wrk ----------------------------------------------------------------------------------------


@dataclass
class WrkResult:
    requests_per_s: float = 0.0
    ok_per_s: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None
    requests: int = 0
    non_2xx: int = 0
    socket_errors: dict[str, int] = field(default_factory=dict)
    listen_overflows: int = 0
    error: str = ""

    def problems(self) -> str:
        out = []
        if self.non_2xx:
            out.append(f"{self.non_2xx} non-2xx/3xx responses")
        errors = {k: v for k, v in self.socket_errors.items() if v}
        if errors:
            out.append("socket errors " + ", ".join(f"{k} {v}" for k, v in errors.items()))
        if self.listen_overflows:
            out.append(
                f"{self.listen_overflows} listen-queue overflows (kernel count, all sockets)"
            )
        if self.error:
            out.append(self.error)
        return "; ".join(out)


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_PERCENTILE = re.compile(r"^\s*(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.M)


def parse_wrk(out: str) -> WrkResult:
    result = WrkResult()
    if m := re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M):
        result.requests_per_s = float(m.group(1))
    for m in _PERCENTILE.finditer(out):
        value = float(m.group(2)) * _UNITS_MS[m.group(3)]
        if m.group(1) == "50":
            result.p50_ms = value
        else:
            result.p99_ms = value
    if m := re.search(r"^\s*(\d+) requests in", out, re.M):
        result.requests = int(m.group(1))
    if m := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out):
        result.non_2xx = int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        kinds = ("connect", "read", "write", "timeout")
        result.socket_errors = dict(zip(kinds, map(int, m.groups()), strict=True))
    if result.requests:
        ok_share = (result.requests - result.non_2xx) / result.requests
        result.ok_per_s = result.requests_per_s * ok_share
    if "Requests/sec" not in out:
        result.error = "no result from wrk: " + " ".join(out.split())[:200]
    return result


def pin(cmd: list[str], cpu: int | None) -> list[str]:
    return cmd if cpu is None else ["taskset", "-c", str(cpu), *cmd]


def run_wrk(
    url: str, threads: int, connections: int, seconds: float, timeout: float, cpu: int | None
) -> WrkResult:
    duration = max(1, round(seconds))
    cmd = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", f"--timeout={timeout:g}s",
        "--latency", url,
    ]  # fmt: skip
    overflows = listen_overflows()
    try:
        proc = subprocess.run(
            pin(cmd, cpu), capture_output=True, text=True, timeout=duration + timeout + 120
        )
    except subprocess.TimeoutExpired:
        return WrkResult(error="wrk did not finish")
    result = parse_wrk(proc.stdout + proc.stderr)
    result.listen_overflows = listen_overflows() - overflows
    return result


def listen_overflows() -> int:
    """The kernel's count of connections dropped because a listen queue was full (Linux)."""
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return 0
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:], strict=False))
            return int(table.get("ListenOverflows", 0))
    return 0


# -- one server, both scenarios ------------------------------------------------------------------


@dataclass
class Scenario:
    name: str
    path: str
    threads: int
    connections: int
    timeout: float
    seconds: int

    def describe(self) -> str:
        return (
            f"GET {self.path}, wrk -t{self.threads} -c{self.connections} -d{self.seconds}s "
            f"--timeout {self.timeout:g}s --latency"
        )


def measure_server(
    server: Server,
    scenarios: list[Scenario],
    args: argparse.Namespace,
    env: dict[str, str],
    cpu: int | None,
    load_cpu: int | None,
) -> dict[str, Any]:
    listen = Listen(free_port(), args.backlog, args.connections_10k)
    cmd = server.command(listen)
    record: dict[str, Any] = {"title": server.title, "command": shlex.join(pin(cmd, cpu))}
    if server.note:
        record["note"] = server.note
    print(f"\n[{server.name}] {server.title}", flush=True)
    print(f"  $ {record['command']}", flush=True)
    if server.note:
        print(f"  note: {server.note}", flush=True)
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            pin(cmd, cpu), cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            try:
                wait_ready(proc, listen.port, timeout=60.0)
                problems = check_answers(listen.port)
            except (RuntimeError, OSError, ValueError, IndexError) as exc:
                record["error"] = str(exc)
                print(f"  FAILED to start: {exc}\n{tail(log)}", flush=True)
                return record
            if problems:
                record["answer_differs"] = problems
                print("  WARNING, the answer differs: " + "; ".join(problems), flush=True)
            for scenario in scenarios:
                url = f"http://{HOST}:{listen.port}{scenario.path}"

                def wrk(seconds: float, scenario: Scenario = scenario, url: str = url) -> WrkResult:
                    return run_wrk(
                        url, scenario.threads, scenario.connections, seconds, scenario.timeout,
                        load_cpu,
                    )  # fmt: skip

                wrk(args.warmup)
                runs = [wrk(scenario.seconds) for _ in range(args.repeat)]
                best = max(runs, key=lambda r: r.ok_per_s)
                record[scenario.name] = asdict(best)
                record[scenario.name]["runs_ok_per_s"] = [round(r.ok_per_s, 1) for r in runs]
                line = f"  {scenario.name:<9} {best.ok_per_s:>10,.0f} req/s"
                line += f"  p50 {fmt_ms(best.p50_ms)}  p99 {fmt_ms(best.p99_ms)}"
                if args.repeat > 1:
                    line += "  (runs: " + ", ".join(f"{r.ok_per_s:,.0f}" for r in runs) + ")"
                print(line, flush=True)
                for number, run in enumerate(runs, 1):
                    if run.problems():
                        which = f"run {number}" if len(runs) > 1 else scenario.name
                        print(f"  WARNING ({which}): {run.problems()}", flush=True)
                if exited(proc):
                    record["error"] = f"the server died during {scenario.name}"
                    print(f"  FAILED: the server died\n{tail(log)}", flush=True)
                    break
        finally:
            stop(proc)
    return record


def median_process(records: list[dict[str, Any]], scenarios: list[Scenario]) -> dict[str, Any]:
    """One server's result over its processes: per scenario, the process with
    the median req/s (the lower of the two middle ones for an even count)."""
    combined = dict(records[0])
    for scenario in scenarios:
        measured = [r[scenario.name] for r in records if scenario.name in r]
        if not measured:
            continue
        ranked = sorted(measured, key=lambda m: m["ok_per_s"])
        chosen = dict(ranked[(len(ranked) - 1) // 2])
        if len(records) > 1:
            chosen["processes_ok_per_s"] = [round(m["ok_per_s"], 1) for m in measured]
        combined[scenario.name] = chosen
    errors = [r["error"] for r in records if "error" in r]
    if errors:
        combined["error"] = "; ".join(errors)
    return combined


# -- the report ----------------------------------------------------------------------------------


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 1000:
        return f"{value / 1000:.2f}s"
    return f"{value:.2f}ms"


def print_table(
    scenario: Scenario, results: dict[str, dict[str, Any]], ideal: float | None
) -> None:
    rows = {name: r[scenario.name] for name, r in results.items() if scenario.name in r}
    if not rows:
        return
    print(f"\n{scenario.name}: {scenario.describe()}")
    if ideal:
        print(f"  ideal: {ideal:,.0f} req/s ({scenario.connections:,} connections / {SLEEP}s)")
    base = rows.get("treadle", {}).get("ok_per_s") or 0.0
    print(f"  {'server':<16}{'req/s':>10}{'p50':>11}{'p99':>11}{'x Treadle':>11}{'Treadle/x':>11}")
    notes = []
    for name, row in rows.items():
        rps = row["ok_per_s"]
        vs = f"{rps / base:.2f}x" if base and rps else "-"
        inverse = f"{base / rps:.2f}x" if base and rps else "-"
        flag = ""
        problems = WrkResult(
            **{k: v for k, v in row.items() if k not in ("runs_ok_per_s", "processes_ok_per_s")}
        ).problems()
        if problems:
            flag = " *"
            notes.append(f"  * {name}: {problems}")
        print(
            f"  {name:<16}{rps:>10,.0f}{fmt_ms(row['p50_ms']):>11}{fmt_ms(row['p99_ms']):>11}"
            f"{vs:>11}{inverse:>11}{flag}"
        )
    for note in notes:
        print(note)


def read_sysctl(name: str) -> str:
    try:
        return Path("/proc/sys", *name.split(".")).read_text().strip()
    except OSError:
        return "?"


def raise_nofile(needed: int) -> tuple[int, int]:
    """Raise this process's soft open-files limit (the servers and wrk inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, needed)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return soft, resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for dist in DISTRIBUTIONS:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", action="append", choices=SERVER_NAMES, help="repeatable")
    parser.add_argument("--seconds", type=float, default=5.0, help="per measured run (wrk -d)")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up before a scenario")
    parser.add_argument("--repeat", type=int, default=1, help="measured runs; the best counts")
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="start each server this many times (round-robin); the median process counts",
    )
    parser.add_argument("--seconds-10k", type=float, help="sleep10k runs (default: --seconds)")
    parser.add_argument("--connections", type=int, default=64, help="hello: wrk -c")
    parser.add_argument("--connections-10k", type=int, default=10_000, help="sleep10k: wrk -c")
    parser.add_argument("--threads-10k", type=int, default=2, help="sleep10k: wrk -t")
    parser.add_argument("--timeout", type=float, default=10.0, help="sleep10k: wrk --timeout (s)")
    parser.add_argument("--backlog", type=int, default=None, help="listen backlog (default: 10k)")
    parser.add_argument("--skip-10k", action="store_true", help="only the hello scenario")
    parser.add_argument("--cpu", type=int, default=0, help="the server's CPU (-1: no pinning)")
    parser.add_argument("--load-cpu", type=int, default=1, help="wrk's CPU")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results here")
    args = parser.parse_args(argv)
    if args.backlog is None:
        args.backlog = args.connections_10k

    if not shutil.which("wrk"):
        print("bench/http.py needs wrk (apt-get install wrk)", file=sys.stderr)
        return 2
    pinning = args.cpu >= 0 and shutil.which("taskset") is not None
    cpu = args.cpu if pinning else None
    load_cpu = args.load_cpu if pinning else None
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("PYTHONASYNCIODEBUG", None)

    before, nofile = raise_nofile(args.connections_10k + 1000)
    if not args.skip_10k and nofile < args.connections_10k + 100:
        reduced = max(100, nofile - 200)
        print(f"open-files limit {nofile}: sleep10k uses {reduced} connections, not "
              f"{args.connections_10k}")  # fmt: skip
        args.connections_10k = reduced
    somaxconn = read_sysctl("net.core.somaxconn")
    syn_backlog = read_sysctl("net.ipv4.tcp_max_syn_backlog")
    info = versions()
    seconds, warmup = max(1, round(args.seconds)), max(1, round(args.warmup))
    print(
        f"Python {info['python']}; servers on CPU {cpu}, wrk on CPU {load_cpu}; "
        f"{seconds}s runs after a {warmup}s warm-up, best of {args.repeat}"
        + (f"; median of {args.processes} processes" if args.processes > 1 else "")
    )
    print("peers: " + ", ".join(f"{k} {v}" for k, v in info.items() if k != "python"))
    print(
        f"open files: soft {before} -> {nofile}; backlog asked {args.backlog}, "
        f"net.core.somaxconn {somaxconn} (the kernel's cap), "
        f"net.ipv4.tcp_max_syn_backlog {syn_backlog}; "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )

    seconds_10k = seconds if args.seconds_10k is None else max(1, round(args.seconds_10k))
    scenarios = [Scenario("hello", f"/hello/{NAME}", 1, args.connections, 2.0, seconds)]
    if not args.skip_10k:
        scenarios.append(
            Scenario(
                "sleep10k",
                f"/sleep/{NAME}",
                args.threads_10k,
                args.connections_10k,
                args.timeout,
                seconds_10k,
            )
        )
    wanted = args.only or SERVER_NAMES
    skipped: dict[str, str] = {}
    servers = []
    for server in all_servers(env):
        if server.name not in wanted:
            continue
        missing = [m for m in server.requires if importlib.util.find_spec(m) is None]
        if missing:
            skipped[server.name] = "not installed: " + ", ".join(missing)
            print(f"\n[{server.name}] skipped, {skipped[server.name]}", flush=True)
            continue
        servers.append(server)
    # Round-robin over fresh processes: a server's speed differs from one
    # process to the next (memory layout, hash seed) by several percent, more
    # than between runs in one process; drift over time hits every server alike.
    per_process: dict[str, list[dict[str, Any]]] = {server.name: [] for server in servers}
    for number in range(args.processes):
        if args.processes > 1:
            print(f"\n-- process round {number + 1} of {args.processes}", flush=True)
        for server in servers:
            record = measure_server(server, scenarios, args, env, cpu, load_cpu)
            per_process[server.name].append(record)
    results = {name: median_process(records, scenarios) for name, records in per_process.items()}

    for scenario in scenarios:
        ideal = scenario.connections / SLEEP if scenario.name == "sleep10k" else None
        print_table(scenario, results, ideal)
    for name, record in results.items():
        if "note" in record:
            print(f"note ({name}): {record['note']}")
        if "error" in record:
            print(f"error ({name}): {record['error']}")
    for name, why in skipped.items():
        print(f"skipped ({name}): {why}")

    if args.json:
        report = {
            "versions": info,
            "settings": {
                "seconds": seconds,
                "seconds_10k": seconds_10k,
                "warmup": warmup,
                "repeat": args.repeat,
                "processes": args.processes,
                "cpu": cpu,
                "load_cpu": load_cpu,
                "backlog": args.backlog,
                "somaxconn": somaxconn,
                "tcp_max_syn_backlog": syn_backlog,
                "nofile": nofile,
                "load_average": os.getloadavg(),
            },
            "scenarios": {s.name: s.describe() for s in scenarios},
            "results": results,
            "skipped": skipped,
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
