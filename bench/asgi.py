"""ASGI and WSGI benchmark: Treadle against uvicorn, granian, hypercorn and gunicorn, in one run.

    .venv/bin/pip install -e '.[test,bench]'   # the peers and the frameworks
    .venv/bin/python bench/asgi.py              # every server x app pair installed
    .venv/bin/python bench/asgi.py --apps bare --apps starlette --only treadle --only uvicorn
    .venv/bin/python bench/asgi.py --processes 3 --repeat 2 --json bench-asgi.json

Issue 15: one worker per server, access log off, each server alone on one
core (`--cpu`, default 0) and `wrk -t1 -c64 --latency` on the other
(`--load-cpu`, default 1). The machinery is bench/http.py's (imported from
it): for each pair, start the server, poll it until it answers, check that
its answers are the same as every other server's for that app (status,
Content-Type, body; a difference is printed as a WARNING and kept in the
JSON), warm up, measure `--repeat` times (the best run counts), stop it.
With `--processes N` that is done N times per pair, round-robin over the
pairs, and the process with the median req/s counts.

The apps (bench/apps/), each answering the same bytes on every server:
- bare: `asgi_app`, a bare ASGI 3 callable, `GET /hello/{name}` ->
  `<h1>hello, NAME!</h1>` (bench/http.py's uvicorn and granian app).
- starlette: `asgi_starlette`, a Starlette `Route("/hello/{name}")` giving an
  `HTMLResponse`, the same bytes as bare.
- fastapi: `asgi_fastapi`, a FastAPI JSON route, `{"message":"hello, NAME!"}`.
- flask: `wsgi_flask`, a Flask view, the same bytes as bare (WSGI).

The servers (all on 127.0.0.1, one worker, access log off):
- treadle: `python -m treadle run APP --interface asgi|wsgi --workers 1
  --backlog B`, every other setting its default (the garbage-collector
  tuning on; the WSGI pool min(32, CPUs + 4) threads).
- uvicorn (ASGI): `--loop uvloop --http httptools --no-access-log`.
- granian: `--interface asgi --workers 1 --runtime-threads 1 --no-ws --http 1
  --loop uvloop --no-access-log` (bench/http.py's settings for one core);
  for WSGI `--interface wsgi --blocking-threads N` in place of the loop.
- hypercorn (ASGI): its defaults (one worker, the asyncio worker class, no
  access log), only the bind and the log level given.
- gunicorn (WSGI): `-k gthread --threads N --workers 1`, no access log.

N, the WSGI threads of gunicorn and granian, is Treadle's default pool
(`treadle.wsgi.default_threads()`: 6 on a 2-CPU machine) unless
`--wsgi-threads` sets it for all three: every WSGI server gets the same
number of threads to run Flask in.

Printed per app: req/s (2xx only), p50, p99, the server's CPU time per
request (user + system of all its processes and threads over the run,
divided by the requests: steadier than req/s on a shared machine, where
other work takes turns on the server's core), Treadle's ratio to each peer
in req/s, and each of the issue's targets met or NOT met (on req/s, as the
issue states them). Then the server's share of a framework's request: each
server's CPU time per request for the bare app against the framework apps,
the difference being about what the framework costs on that server.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# `python bench/asgi.py` puts bench/ first on sys.path, where bench/http.py
# would shadow the stdlib's `http` package; the repository root instead lets
# bench/http.py be imported as `bench.http` for its machinery.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import http as base  # noqa: E402

HOST = base.HOST
NAME = "world"
HELLO = f"/hello/{NAME}"


# -- the apps -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class App:
    name: str
    title: str
    target: str  # module:attribute
    interface: str  # "asgi" or "wsgi"
    content_type: str
    body: bytes  # the answer to GET /hello/world
    requires: tuple[str, ...]


_HTML = "text/html; charset=utf-8"
_HELLO_HTML = f"<h1>hello, {NAME}!</h1>".encode()

APPS = [
    App("bare", "bare ASGI hello", "bench.apps.asgi_app:app", "asgi", _HTML, _HELLO_HTML, ()),
    App(
        "starlette",
        "Starlette route /hello/{name}",
        "bench.apps.asgi_starlette:app",
        "asgi",
        _HTML,
        _HELLO_HTML,
        ("starlette",),
    ),
    App(
        "fastapi",
        "FastAPI JSON route /hello/{name}",
        "bench.apps.asgi_fastapi:app",
        "asgi",
        "application/json",
        f'{{"message":"hello, {NAME}!"}}'.encode(),
        ("fastapi",),
    ),
    App(
        "flask",
        "Flask hello (WSGI)",
        "bench.apps.wsgi_flask:app",
        "wsgi",
        _HTML,
        _HELLO_HTML,
        ("flask",),
    ),
]
APP_NAMES = [app.name for app in APPS]

# Issue 15's targets: Treadle's req/s over the peer's, per app, in one run.
TARGETS: dict[str, dict[str, float]] = {
    "bare": {"uvicorn": 1.5, "granian": 1.3},
    "starlette": {"uvicorn": 1.3, "granian": 1.0},
    "fastapi": {"uvicorn": 1.1, "granian": 1.0},
    "flask": {"granian": 1.0},
}

# Paths the answers are compared on: the measured one, one whose name needs
# percent-decoding and HTML escaping, and a 404 (each framework's own body).
CHECK_PATHS = (HELLO, "/hello/a%20b%3C", "/nowhere/at/all")


# -- the servers ----------------------------------------------------------------------------------


@dataclass
class Settings:
    port: int
    backlog: int
    wsgi_threads: int  # gunicorn's and granian's threads for a WSGI app
    treadle_wsgi_threads: int | None  # --wsgi-threads for Treadle (None: its default)


Command = Callable[[App, Settings], list[str]]


@dataclass
class Server:
    name: str
    title: str
    interfaces: tuple[str, ...]
    requires: tuple[str, ...]
    command: Command


def _treadle(app: App, s: Settings) -> list[str]:
    cmd = [
        sys.executable, "-m", "treadle", "run", app.target, "--interface", app.interface,
        "--host", HOST, "--port", str(s.port), "--workers", "1", "--backlog", str(s.backlog),
    ]  # fmt: skip
    if app.interface == "wsgi" and s.treadle_wsgi_threads is not None:
        cmd += ["--wsgi-threads", str(s.treadle_wsgi_threads)]
    return cmd


def _uvicorn(app: App, s: Settings) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", app.target, "--host", HOST, "--port", str(s.port),
        "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning",
        "--backlog", str(s.backlog),
    ]  # fmt: skip


def _granian(app: App, s: Settings) -> list[str]:
    cmd = [
        sys.executable, "-m", "granian", "--interface", app.interface, app.target,
        "--host", HOST, "--port", str(s.port), "--workers", "1", "--runtime-threads", "1",
        "--no-ws", "--http", "1", "--no-access-log", "--log-level", "warning",
        "--backlog", str(s.backlog),
    ]  # fmt: skip
    if app.interface == "wsgi":
        cmd += ["--blocking-threads", str(s.wsgi_threads)]
    else:
        cmd += ["--loop", base._granian_loop()]
    return cmd


def _hypercorn(app: App, s: Settings) -> list[str]:
    return [
        sys.executable, "-m", "hypercorn", app.target, "--bind", f"{HOST}:{s.port}",
        "--log-level", "warning",
    ]  # fmt: skip


def _gunicorn(app: App, s: Settings) -> list[str]:
    return [
        sys.executable, "-m", "gunicorn", app.target, "--bind", f"{HOST}:{s.port}",
        "--workers", "1", "--worker-class", "gthread", "--threads", str(s.wsgi_threads),
        "--backlog", str(s.backlog), "--log-level", "warning",
    ]  # fmt: skip


SERVERS = [
    Server("treadle", "treadle run, one worker", ("asgi", "wsgi"), ("treadle",), _treadle),
    Server(
        "uvicorn",
        "uvicorn, httptools + uvloop",
        ("asgi",),
        ("uvicorn", "httptools", "uvloop"),
        _uvicorn,
    ),
    Server(
        "granian", "granian, 1 worker, 1 runtime thread", ("asgi", "wsgi"), ("granian",), _granian
    ),
    Server("hypercorn", "hypercorn, its defaults", ("asgi",), ("hypercorn",), _hypercorn),
    Server("gunicorn", "gunicorn gthread", ("wsgi",), ("gunicorn",), _gunicorn),
]
SERVER_NAMES = [server.name for server in SERVERS]
DISTRIBUTIONS = [
    "uvicorn", "httptools", "uvloop", "granian", "hypercorn", "gunicorn",
    "starlette", "fastapi", "pydantic", "flask", "werkzeug",
]  # fmt: skip


# -- checking the answers -------------------------------------------------------------------------


Answer = tuple[int, str, bytes]


def answers(port: int) -> dict[str, Answer]:
    """Status, Content-Type (spaces dropped, lower case) and body for each check path."""
    out = {}
    for path in CHECK_PATHS:
        status, headers, body = base.fetch(port, path, timeout=10.0)
        content_type = headers.get("content-type", "").lower().replace(" ", "")
        out[path] = (status, content_type, body)
    return out


def differences(
    app: App, got: dict[str, Answer], reference: dict[str, Answer] | None, first: str
) -> list[str]:
    """What differs from the app's expected answer to GET /hello/world, and
    from the answers of the first server that served this app (`reference`)."""
    problems = []
    status, content_type, body = got[HELLO]
    if status != 200:
        problems.append(f"{HELLO}: status {status}")
    if content_type != app.content_type.replace(" ", ""):
        problems.append(f"{HELLO}: Content-Type {content_type!r}")
    if body != app.body:
        problems.append(f"{HELLO}: body {body[:80]!r}")
    if reference is not None:
        for path, answer in got.items():
            if answer != reference[path]:
                problems.append(
                    f"{path}: {answer[0]} {answer[1]!r} {answer[2][:60]!r}, where {first} "
                    f"answered {reference[path][0]} {reference[path][1]!r} "
                    f"{reference[path][2][:60]!r}"
                )
    return problems


# -- measuring one pair ---------------------------------------------------------------------------


@dataclass
class Run:
    seconds: int
    warmup: int
    repeat: int
    connections: int
    backlog: int
    wsgi_threads: int
    treadle_wsgi_threads: int | None


def measure(
    server: Server,
    app: App,
    run: Run,
    env: dict[str, str],
    cpu: int | None,
    load_cpu: int | None,
    reference: dict[App, tuple[str, dict[str, Answer]]],
) -> dict[str, Any]:
    settings = Settings(base.free_port(), run.backlog, run.wsgi_threads, run.treadle_wsgi_threads)
    cmd = server.command(app, settings)
    record: dict[str, Any] = {"command": shlex.join(base.pin(cmd, cpu))}
    print(f"\n[{app.name} on {server.name}] {app.title}; {server.title}", flush=True)
    print(f"  $ {record['command']}", flush=True)
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            base.pin(cmd, cpu), cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            try:
                base.wait_ready(proc, settings.port, timeout=60.0)
                got = answers(settings.port)
            except (RuntimeError, OSError, ValueError, IndexError) as exc:
                record["error"] = str(exc)
                print(f"  FAILED to start: {exc}\n{base.tail(log)}", flush=True)
                return record
            first, ref = reference.setdefault(app, (server.name, got))
            problems = differences(app, got, None if first == server.name else ref, first)
            if problems:
                record["answer_differs"] = problems
                for problem in problems:
                    print(f"  WARNING, the answer differs: {problem}", flush=True)
            url = f"http://{HOST}:{settings.port}{HELLO}"

            def wrk(seconds: float) -> tuple[base.WrkResult, float | None]:
                before = session_cpu(proc.pid)
                result = base.run_wrk(url, 1, run.connections, seconds, 2.0, load_cpu)
                spent = session_cpu(proc.pid) - before
                return result, spent / result.requests * 1e6 if result.requests else None

            wrk(run.warmup)
            runs = [wrk(run.seconds) for _ in range(run.repeat)]
            best, cpu_us = max(runs, key=lambda r: r[0].ok_per_s)
            record.update(asdict(best))
            record["cpu_us_per_request"] = None if cpu_us is None else round(cpu_us, 2)
            record["runs_ok_per_s"] = [round(r.ok_per_s, 1) for r, _ in runs]
            line = f"  {best.ok_per_s:>10,.0f} req/s  p50 {base.fmt_ms(best.p50_ms)}"
            line += f"  p99 {base.fmt_ms(best.p99_ms)}  CPU {fmt_us(cpu_us)}/request"
            if run.repeat > 1:
                line += "  (runs: " + ", ".join(f"{r.ok_per_s:,.0f}" for r, _ in runs) + ")"
            print(line, flush=True)
            for number, (result, _) in enumerate(runs, 1):
                if result.problems():
                    print(f"  WARNING (run {number}): {result.problems()}", flush=True)
            if base.exited(proc):
                record["error"] = "the server died during the runs"
                print(f"  FAILED: the server died\n{base.tail(log)}", flush=True)
        finally:
            base.stop(proc)
    return record


def session_cpu(sid: int) -> float:
    """CPU seconds (user + system) used so far by the processes of session
    `sid`: the server with its workers and threads (each server is started
    as a session leader). On a shared machine a server's CPU time per
    request is steadier than its req/s, which also counts the time other
    work held its core."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as file:
                fields = file.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        # After the name: state, ppid, pgrp, session, ..., utime (12th), stime (13th).
        if int(fields[3]) == sid:
            total += int(fields[11]) + int(fields[12])
    return total / tick


def fmt_us(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}us"


def median_process(records: list[dict[str, Any]]) -> dict[str, Any]:
    """One pair's result over its processes: the process with the median
    req/s (the lower of the two middle ones for an even count)."""
    measured = [r for r in records if "ok_per_s" in r]
    if not measured:
        return dict(records[0])
    ranked = sorted(measured, key=lambda r: r["ok_per_s"])
    chosen = dict(ranked[(len(ranked) - 1) // 2])
    if len(records) > 1:
        chosen["processes_ok_per_s"] = [round(r["ok_per_s"], 1) for r in measured]
    errors = [r["error"] for r in records if r.get("error")]
    if errors:
        chosen["error"] = "; ".join(errors)
    return chosen


# -- the report -----------------------------------------------------------------------------------


def verdicts(results: dict[str, dict[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Each of the issue's targets whose two servers were both measured."""
    out = []
    for app_name, targets in TARGETS.items():
        rows = results.get(app_name, {})
        mine = rows.get("treadle", {}).get("ok_per_s") or 0.0
        for peer, target in targets.items():
            theirs = rows.get(peer, {}).get("ok_per_s") or 0.0
            if not mine or not theirs:
                continue
            ratio = mine / theirs
            out.append(
                {"app": app_name, "peer": peer, "target": target, "ratio": round(ratio, 3),
                 "met": ratio >= target}
            )  # fmt: skip
    return out


def print_app(app: App, rows: dict[str, dict[str, Any]], connections: int) -> None:
    if not rows:
        return
    print(f"\n{app.name}: {app.title}, GET {HELLO}, wrk -t1 -c{connections} --latency")
    mine = rows.get("treadle", {}).get("ok_per_s") or 0.0
    targets = TARGETS.get(app.name, {})
    print(
        f"  {'server':<11}{'req/s':>10}{'p50':>10}{'p99':>10}{'CPU/req':>10}{'Treadle/x':>11}"
        "  target"
    )
    notes = []
    for name, row in rows.items():
        rps = row.get("ok_per_s") or 0.0
        ratio = mine / rps if mine and rps else None
        target = targets.get(name)
        verdict = ""
        if target is not None:
            if ratio is None:
                verdict = f">= {target:.1f}x: not measured"
            else:
                verdict = f">= {target:.1f}x: " + ("met" if ratio >= target else "NOT met")
        problems = ""
        if "ok_per_s" in row:
            fields = {k: v for k, v in row.items() if k in base.WrkResult.__dataclass_fields__}
            problems = base.WrkResult(**fields).problems()
        for problem in row.get("answer_differs", []):
            notes.append(f"  ! {name}: the answer differs: {problem}")
        if row.get("error"):
            notes.append(f"  ! {name}: {row['error']}")
        if problems:
            notes.append(f"  * {name}: {problems}")
        flag = " *" if problems else (" !" if "answer_differs" in row or row.get("error") else "")
        shown = f"{ratio:.2f}x" if ratio else "-"
        print(
            f"  {name:<11}{rps:>10,.0f}{base.fmt_ms(row.get('p50_ms')):>10}"
            f"{base.fmt_ms(row.get('p99_ms')):>10}{fmt_us(row.get('cpu_us_per_request')):>10}"
            f"{shown:>11}  {verdict}{flag}"
        )
    for note in notes:
        print(note)


def us_per_request(row: dict[str, Any]) -> float | None:
    """The server's CPU time per request if measured, else 1e6 / req/s (the
    same thing when the server keeps its core busy, as under wrk -c64)."""
    if row.get("cpu_us_per_request"):
        return float(row["cpu_us_per_request"])
    rps = row.get("ok_per_s") or 0.0
    return 1e6 / rps if rps else None


def server_share(results: dict[str, dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per ASGI server: microseconds per request for the bare app and each
    framework app, and the bare app's share of the framework's request."""
    out: dict[str, dict[str, Any]] = {}
    for server, row in results.get("bare", {}).items():
        bare = us_per_request(row)
        if bare is None:
            continue
        entry: dict[str, Any] = {"bare_us": round(bare, 2)}
        for app_name in ("starlette", "fastapi"):
            other = us_per_request(results.get(app_name, {}).get(server, {}))
            if other:
                entry[f"{app_name}_us"] = round(other, 2)
                entry[f"{app_name}_framework_us"] = round(other - bare, 2)
                entry[f"{app_name}_server_share"] = round(bare / other, 3)
        out[server] = entry
    return out


def print_share(share: dict[str, dict[str, Any]]) -> None:
    if not any(len(entry) > 1 for entry in share.values()):
        return
    print(
        "\nThe server's share: the server's CPU us per request (1e6 / req/s where not "
        "measured). The bare app is\nabout all server, so framework - bare (+fw) is about what "
        "the framework costs on that server,\nand bare / framework the server's share of a "
        "framework request"
    )
    print(
        f"  {'server':<11}{'bare':>8}{'starlette':>11}{'(+fw)':>8}{'share':>7}"
        f"{'fastapi':>10}{'(+fw)':>8}{'share':>7}"
    )

    def cell(entry: dict[str, Any], key: str, unit: str = "") -> str:
        value = entry.get(key)
        if value is None:
            return "-"
        return f"{value * 100:.0f}%" if unit == "%" else f"{value:.1f}"

    for server, entry in share.items():
        print(
            f"  {server:<11}{cell(entry, 'bare_us'):>8}"
            f"{cell(entry, 'starlette_us'):>11}{cell(entry, 'starlette_framework_us'):>8}"
            f"{cell(entry, 'starlette_server_share', '%'):>7}"
            f"{cell(entry, 'fastapi_us'):>10}{cell(entry, 'fastapi_framework_us'):>8}"
            f"{cell(entry, 'fastapi_server_share', '%'):>7}"
        )


def versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for dist in DISTRIBUTIONS:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def treadle_wsgi_default(env: dict[str, str]) -> int:
    """The size of Treadle's WSGI pool in a server process (asked of one, so
    it is what the servers see, not this process's view of the CPUs)."""
    probe = subprocess.run(
        [sys.executable, "-c", "import treadle.wsgi as w; print(w.default_threads())"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return int(probe.stdout.strip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", action="append", choices=SERVER_NAMES, help="repeatable")
    parser.add_argument("--apps", action="append", choices=APP_NAMES, help="repeatable")
    parser.add_argument("--seconds", type=float, default=5.0, help="per measured run (wrk -d)")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up before measuring")
    parser.add_argument("--repeat", type=int, default=1, help="measured runs; the best counts")
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="start each pair this many times (round-robin); the median process counts",
    )
    parser.add_argument("--connections", type=int, default=64, help="wrk -c")
    parser.add_argument("--backlog", type=int, default=2048, help="listen backlog (not hypercorn)")
    parser.add_argument(
        "--wsgi-threads",
        type=int,
        default=None,
        help="threads for the WSGI app on every WSGI server (default: Treadle's default pool, "
        "given to gunicorn and granian; Treadle keeps its default)",
    )
    parser.add_argument("--cpu", type=int, default=0, help="the server's CPU (-1: no pinning)")
    parser.add_argument("--load-cpu", type=int, default=1, help="wrk's CPU")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results here")
    args = parser.parse_args(argv)

    if not shutil.which("wrk"):
        print("bench/asgi.py needs wrk (apt-get install wrk)", file=sys.stderr)
        return 2
    pinning = args.cpu >= 0 and shutil.which("taskset") is not None
    cpu = args.cpu if pinning else None
    load_cpu = args.load_cpu if pinning else None
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("PYTHONASYNCIODEBUG", None)
    base.raise_nofile(args.connections + 1000)

    wsgi_default = treadle_wsgi_default(env)
    run = Run(
        seconds=max(1, round(args.seconds)),
        warmup=max(1, round(args.warmup)),
        repeat=args.repeat,
        connections=args.connections,
        backlog=args.backlog,
        wsgi_threads=args.wsgi_threads or wsgi_default,
        treadle_wsgi_threads=args.wsgi_threads,
    )
    info = versions()
    print(
        f"Python {info['python']}; servers on CPU {cpu}, wrk on CPU {load_cpu}; "
        f"{run.seconds}s runs after a {run.warmup}s warm-up, best of {run.repeat}"
        + (f"; median of {args.processes} processes" if args.processes > 1 else "")
    )
    print("versions: " + ", ".join(f"{k} {v}" for k, v in info.items() if k != "python"))
    print(
        f"WSGI threads: {run.wsgi_threads} (gunicorn --threads, granian --blocking-threads; "
        f"Treadle's pool: {args.wsgi_threads or f'its default, {wsgi_default}'}); "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )

    wanted_servers = args.only or SERVER_NAMES
    wanted_apps = args.apps or APP_NAMES
    skipped: dict[str, str] = {}
    pairs: list[tuple[App, Server]] = []
    for app in APPS:
        if app.name not in wanted_apps:
            continue
        missing = [m for m in app.requires if importlib.util.find_spec(m) is None]
        if missing:
            skipped[app.name] = "not installed: " + ", ".join(missing)
            continue
        for server in SERVERS:
            if server.name not in wanted_servers or app.interface not in server.interfaces:
                continue
            missing = [m for m in server.requires if importlib.util.find_spec(m) is None]
            if missing:
                skipped[server.name] = "not installed: " + ", ".join(missing)
                continue
            pairs.append((app, server))
    for name, why in skipped.items():
        print(f"skipped ({name}): {why}", flush=True)

    # Round-robin over fresh processes, as bench/http.py: one process of a
    # server can be several percent faster than the next (memory layout, hash
    # seed), and drift over time then hits every pair alike.
    reference: dict[App, tuple[str, dict[str, Answer]]] = {}
    per_process: dict[tuple[str, str], list[dict[str, Any]]] = {
        (app.name, server.name): [] for app, server in pairs
    }
    for number in range(args.processes):
        if args.processes > 1:
            print(f"\n-- process round {number + 1} of {args.processes}", flush=True)
        for app, server in pairs:
            record = measure(server, app, run, env, cpu, load_cpu, reference)
            per_process[(app.name, server.name)].append(record)

    results: dict[str, dict[str, dict[str, Any]]] = {}
    for (app_name, server_name), records in per_process.items():
        results.setdefault(app_name, {})[server_name] = median_process(records)
    for app in APPS:
        print_app(app, results.get(app.name, {}), run.connections)
    share = server_share(results)
    print_share(share)
    checks = verdicts(results)
    if checks:
        print("\nIssue 15's targets (Treadle's req/s over the peer's, same run):")
        for check in checks:
            print(
                f"  {check['app']:<10} vs {check['peer']:<8} {check['ratio']:.2f}x "
                f"(target {check['target']:.1f}x): {'met' if check['met'] else 'NOT met'}"
            )

    if args.json:
        report = {
            "versions": info,
            "settings": {**asdict(run), "processes": args.processes, "cpu": cpu,
                         "load_cpu": load_cpu, "load_average": os.getloadavg()},
            "apps": {app.name: {"title": app.title, "target": app.target} for app in APPS},
            "results": results,
            "server_share": share,
            "targets": checks,
            "skipped": skipped,
        }  # fmt: skip
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
