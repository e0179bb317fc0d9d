"""Workers replaced while serving: `--max-requests` (and its jitter),
`--workers-max-rss`, SIGHUP, `--reload`, as real processes on real sockets.

The claim under test is that replacing a worker under continuous load loses
nothing: a client in another process (`LOAD_SOURCE`) sends requests from
several threads without a pause, half of them on a new connection each time
and half on keep-alive connections, and counts every refused or reset
connection, other failure and non-200 answer; each test asserts that all of
them are zero. The app (`APP_SOURCE`, rewritten by the tests to deploy a
new version) answers with its version and its pid, so the client's tally
also shows which workers and which code served. Waits are bounded (the
helpers of test_cli.py); nothing depends on how long something takes.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

from tests.web.test_cli import (
    DEADLINE,
    Running,
    fetch,
    lines,
    listening_sockets,
    subprocess_env,
    treadle_run,
    wait_for,
)

pytestmark = pytest.mark.skipif(
    not hasattr(signal, "SIGHUP"), reason="pre-forked workers need a POSIX system"
)

APP_SOURCE = '''
"""The app tests/web/test_lifecycle.py serves; the tests rewrite VERSION."""
import os
import time
from pathlib import Path

from treadle import web

HERE = Path(__file__).parent
VERSION = "v1"

if (HERE / "gate").exists():
    # A slow import, held until the test creates the file "release".
    with open(HERE / "importing", "a") as f:
        f.write(f"{os.getpid()}\\n")
    end = time.monotonic() + 60
    while not (HERE / "release").exists() and time.monotonic() < end:
        time.sleep(0.01)

HELD = []


async def pid(request):
    return web.Response(text=f"{VERSION} {os.getpid()}")


async def grow(request):
    # Memory that stays: bytes made by repetition are written, so resident.
    HELD.append(b"x" * (int(request.query["mib"]) << 20))
    return web.Response(text=str(os.getpid()))


app = web.Application()
app.router.add_get("/pid", pid)
app.router.add_get("/grow", grow)
'''

LOAD_SOURCE = '''
"""GET /pid from THREADS threads until the file OUT.stop exists: half of them
open a new connection for each request, the others keep theirs open for as
long as the server does (http.client opens another after a response that
says `Connection: close`; a keep-alive connection the server closes without
saying so fails the next request). The tally goes to OUT.progress as it
grows and to OUT at the end."""
import collections
import http.client
import json
import os
import sys
import threading
import time

port, out, threads = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
lock = threading.Lock()
counts = collections.Counter()  # ok, refused, reset, error, status NNN
bodies = collections.Counter()
errors = collections.Counter()


def client(keep_alive):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    while not os.path.exists(out + ".stop"):
        body = None
        try:
            if not keep_alive:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
            try:
                conn.request("GET", "/pid")
                resp = conn.getresponse()
                body = resp.read().decode()
            finally:
                if not keep_alive:
                    conn.close()
        except ConnectionRefusedError:
            kind = "refused"
        except ConnectionResetError:
            kind = "reset"
        except Exception as exc:
            kind, body = "error", f"{type(exc).__name__}: {exc}"
        else:
            kind = "ok" if resp.status == 200 else f"status {resp.status}"
        if kind != "ok":
            conn.close()  # the next request opens another
        with lock:
            counts[kind] += 1
            (bodies if kind == "ok" else errors)[body or kind] += 1
    conn.close()


def report(path):
    with lock:
        data = {"counts": dict(counts), "bodies": dict(bodies), "errors": dict(errors)}
    with open(path + ".tmp", "w") as f:
        json.dump(data, f)
    os.replace(path + ".tmp", path)


running = [threading.Thread(target=client, args=(n % 2 == 1,)) for n in range(threads)]
for thread in running:
    thread.start()
while any(thread.is_alive() for thread in running):
    report(out + ".progress")
    time.sleep(0.02)
report(out)
'''


def write_app(folder: Path, version: str, broken: str = "") -> None:
    """Deploy a version of the app: `broken` is "raise" (its import raises)
    or "no-app" (it has no `app`)."""
    source = APP_SOURCE.replace('VERSION = "v1"', f"VERSION = {version!r}")
    if broken == "raise":
        source += '\nraise RuntimeError("broken deploy")\n'
    elif broken == "no-app":
        source = source.replace("\napp = ", "\napplication = ").replace(
            "app.router", "application.router"
        )
    (folder / "lifeapp.py").write_text(source)


@pytest.fixture
def app_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    write_app(tmp_path, "v1")
    (tmp_path / "load.py").write_text(LOAD_SOURCE)
    # A rewrite within the second the last one was made, of the same size,
    # would pass the .pyc's check: no bytecode files, then.
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    return tmp_path


class Load:
    """The load client, running in its own process."""

    def __init__(self, folder: Path, port: int, threads: int) -> None:
        self.out = folder / f"load-{port}.json"
        self.proc = subprocess.Popen(
            [sys.executable, str(folder / "load.py"), str(port), str(self.out), str(threads)],
            env=subprocess_env(),
        )

    def tally(self, final: bool = False) -> dict[str, Any]:
        path = self.out if final else self.out.with_name(self.out.name + ".progress")
        try:
            data: dict[str, Any] = json.loads(path.read_text())
        except FileNotFoundError:
            return {"counts": {}, "bodies": {}, "errors": {}}
        return data

    def ok(self) -> int:
        return int(self.tally()["counts"].get("ok", 0))

    def more(self, count: int, what: str) -> None:
        """Wait for `count` more answered requests."""
        goal = self.ok() + count
        wait_for(lambda: self.ok() >= goal, f"{count} more requests {what}")

    def finish(self) -> dict[str, Any]:
        Path(f"{self.out}.stop").touch()
        assert self.proc.wait(DEADLINE) == 0
        return self.tally(final=True)


@contextmanager
def load(folder: Path, port: int, threads: int = 4) -> Iterator[Load]:
    client = Load(folder, port, threads)
    try:
        client.more(50, "before anything happens")
        yield client
    finally:
        with suppress(ProcessLookupError):
            client.proc.kill()
        client.proc.wait()


def assert_nothing_failed(tally: dict[str, Any]) -> dict[str, int]:
    """Every request answered 200: no refused or reset connection, no other
    error, no other status. The bodies served, by count."""
    assert set(tally["counts"]) == {"ok"}, (tally["counts"], tally["errors"])
    assert tally["counts"]["ok"] > 0
    bodies: dict[str, int] = tally["bodies"]
    return bodies


def served_by(bodies: dict[str, int] | list[str]) -> set[tuple[str, int]]:
    """(version, pid) of the workers that answered."""
    found = set()
    for body in bodies:
        version, pid = body.split()
        found.add((version, int(pid)))
    return found


def pids_answering(port: int, requests: int = 40) -> set[tuple[str, int]]:
    """(version, pid) of whoever answers `requests` new connections (each
    must be answered 200)."""
    bodies = []
    for _ in range(requests):
        status, _, body = fetch(port, "/pid")
        assert status == 200
        bodies.append(body.decode())
    return served_by(bodies)


def listening_inodes(port: int) -> set[int]:
    """The inode numbers of the sockets listening on the TCP port (from `ss`)."""
    listening_sockets(port)  # skips where ss cannot tell
    out = subprocess.run(
        ["ss", "-ltneH", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout
    return {int(inode) for inode in re.findall(r"\bino:(\d+)", out)}


def workers_of(server: Running) -> set[int]:
    """The pids of the parent's children (Linux: from /proc)."""
    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc")
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError):
            # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
            fields = stat.read_text().rpartition(")")[2].split()
            if int(fields[1]) == server.proc.pid and fields[0] != "Z":
                found.add(int(stat.parent.name))
    return found


def log_lines(server: Running, pattern: str) -> list[re.Match[str]]:
    return [m for m in map(re.compile(pattern).fullmatch, server.stderr.splitlines()) if m]


TOOK_PLACE = r"treadle run: worker (\d+) (.*): worker (\d+) took its place"


# -- --max-requests ------------------------------------------------------------------------------


@pytest.mark.parametrize("reuse_port", [True, False])
def test_max_requests_recycles_workers_under_load(app_dir: Path, reuse_port: bool) -> None:
    """A replacement takes over its predecessor's socket (the very socket: the
    parent keeps it open), so nothing queued on it is lost and it never stops
    listening; the predecessor stops accepting and gives the connections it
    accepted a moment to send their request before its graceful stop."""
    flag = [] if reuse_port else ["--no-reuse-port"]
    with treadle_run(
        app_dir, "lifeapp:app", "--port", "0", "--workers", "2", "--max-requests", "50", *flag
    ) as server:
        sockets = listening_inodes(server.port)
        assert len(sockets) == (2 if reuse_port else 1)
        with load(app_dir, server.port) as client:
            wait_for(lambda: len(log_lines(server, TOOK_PLACE)) >= 30, "30 replacements")
            client.more(200, "after the replacements")
            tally = client.finish()
        bodies = assert_nothing_failed(tally)
        replaced = log_lines(server, TOOK_PLACE)
        assert {m[2] for m in replaced} == {"served its 50 requests (--max-requests)"}
        assert listening_inodes(server.port) == sockets
        # The workers replaced served the stream (their replacements too), and
        # none was a crash's replacement.
        assert {int(m[1]) for m in replaced} <= {pid for _, pid in served_by(bodies)}
        assert "starting another" not in server.stderr
        assert server.stop() == 0


def test_max_requests_jitter_and_quick_replacements(app_dir: Path) -> None:
    """Each worker's limit is --max-requests plus a random 0 to J; and workers
    replaced within seconds of starting are not taken for ones that crash as
    they start (five of those in a row and the parent gives up)."""
    with treadle_run(
        app_dir,
        "lifeapp:app",
        "--port", "0",
        "--max-requests", "1",
        "--max-requests-jitter", "9",
    ) as server:  # fmt: skip
        assert server.banner.endswith("(1 worker) ========")

        def ten_replaced() -> bool:
            assert fetch(server.port, "/pid")[0] == 200
            return len(log_lines(server, TOOK_PLACE)) >= 10

        wait_for(ten_replaced, "ten workers to be replaced")
        said = [m[2].replace(" request ", " requests ") for m in log_lines(server, TOOK_PLACE)]
        limits = [
            int(re.sub(r"served its (\d+) requests \(--max-requests\)", r"\1", s)) for s in said
        ]
        assert all(1 <= limit <= 10 for limit in limits)
        assert len(set(limits)) > 1  # ten of the same: 1 chance in 10**9
        assert "starting another" not in server.stderr
        assert "giving up" not in server.stderr
        assert server.stop() == 0


def test_a_stop_just_as_a_replacement_starts(app_dir: Path) -> None:
    """A SIGTERM the parent passes on to a worker it has only just forked
    reaches it, even before the worker has its own signal handlers: each
    time, the server stops. (The request makes the worker due for
    replacement, so the stop follows the fork closely; before the fix about
    one stop in two waited for the parent's kill, long after DEADLINE.)"""
    for _ in range(6):
        with treadle_run(app_dir, "lifeapp:app", "--port", "0", "--max-requests", "1") as server:
            assert fetch(server.port, "/pid")[0] == 200
            assert server.stop() == 0


# -- --workers-max-rss ---------------------------------------------------------------------------


def test_workers_max_rss_replaces_a_worker_that_grows(app_dir: Path) -> None:
    with treadle_run(
        app_dir, "lifeapp:app", "--port", "0", "--workers", "2", "--workers-max-rss", "150"
    ) as server:
        before = pids_answering(server.port)
        status, _, body = fetch(server.port, "/grow?mib=200")
        assert status == 200
        grown = int(body)
        replaced = wait_for(lambda: log_lines(server, TOOK_PLACE), "the grown worker's replacement")
        old, why, new = replaced[0].groups()
        assert int(old) == grown
        size = re.fullmatch(r"uses (\d+) MiB, over --workers-max-rss 150", why)
        assert size is not None and int(size[1]) >= 200
        wait_for(lambda: ("v1", int(new)) in pids_answering(server.port), "the new worker")
        wait_for(lambda: grown not in {p for _, p in pids_answering(server.port)}, "the old to go")
        assert len(before) == 2 and len(replaced) == 1
        assert server.stop() == 0


# -- SIGHUP ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("reuse_port", [True, False])
def test_sighup_rolls_every_worker_under_load(app_dir: Path, reuse_port: bool) -> None:
    flag = [] if reuse_port else ["--no-reuse-port"]
    with treadle_run(app_dir, "lifeapp:app", "--port", "0", "--workers", "3", *flag) as server:
        old = workers_of(server)
        assert len(old) == 3
        with load(app_dir, server.port) as client:
            write_app(app_dir, "v2")
            server.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: "treadle run: SIGHUP: done" in server.stderr, "the roll to end")
            client.more(200, "after the roll")
            tally = client.finish()
        bodies = assert_nothing_failed(tally)
        served = served_by(bodies)
        assert {version for version, _ in served} == {"v1", "v2"}
        replaced = log_lines(server, TOOK_PLACE)
        assert {int(m[1]) for m in replaced} == old and len(replaced) == 3
        assert {m[2] for m in replaced} == {"runs the old code (SIGHUP)"}
        new = {int(m[3]) for m in replaced}
        after = pids_answering(server.port, 60)
        assert {version for version, _ in after} == {"v2"}
        assert {pid for _, pid in after} <= new
        assert server.stop() == 0


@pytest.mark.parametrize(
    ("broken", "why"),
    [
        ("raise", "RuntimeError: broken deploy"),
        ("no-app", "module 'lifeapp' has no attribute 'app'"),
    ],
)
def test_sighup_with_code_that_cannot_load_keeps_the_old_workers(
    app_dir: Path, broken: str, why: str
) -> None:
    with treadle_run(app_dir, "lifeapp:app", "--port", "0", "--workers", "2") as server:
        old = {("v1", pid) for pid in workers_of(server)}
        with load(app_dir, server.port) as client:
            write_app(app_dir, "v2", broken)
            server.proc.send_signal(signal.SIGHUP)
            failed = wait_for(
                lambda: log_lines(server, r"treadle run: error: SIGHUP: (.*)"), "the error"
            )
            assert failed[0][1] == (
                f"the new code cannot be loaded ({why}); the workers keep serving the code "
                "they have"
            )
            client.more(200, "after the failed roll")
            assert pids_answering(server.port) <= old
            # Fixed, and signalled again: now it rolls.
            write_app(app_dir, "v3")
            server.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: "treadle run: SIGHUP: done" in server.stderr, "the roll to end")
            client.more(200, "after the roll")
            tally = client.finish()
        assert_nothing_failed(tally)
        assert {version for version, _ in pids_answering(server.port)} == {"v3"}
        assert len(log_lines(server, TOOK_PLACE)) == 2
        assert len(log_lines(server, r"treadle run: error: .*")) == 1
        assert "starting another" not in server.stderr
        assert server.stop() == 0


def test_a_new_worker_takes_connections_only_once_its_app_is_loaded(app_dir: Path) -> None:
    """The new workers of a roll, and a crashed worker's replacement, import
    an app that takes as long as the test wants. Meanwhile every connection
    is answered at once by the workers already serving (one waiting for the
    slow import would wait until the test's bound, and fail it), and the
    replacement of the crashed worker has no listening socket yet."""
    with treadle_run(app_dir, "lifeapp:app", "--port", "0", "--workers", "2") as server:
        assert len(listening_sockets(server.port)) == 2
        old = workers_of(server)
        (app_dir / "gate").touch()
        with load(app_dir, server.port) as client:
            write_app(app_dir, "v2")
            server.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: lines(app_dir / "importing"), "the new worker to start importing")
            assert {pid for _, pid in pids_answering(server.port, 60)} <= old
            client.more(200, "while the new worker imports")
            (app_dir / "release").touch()
            wait_for(lambda: "treadle run: SIGHUP: done" in server.stderr, "the roll to end")
            client.more(200, "after the roll")
            tally = client.finish()
        assert_nothing_failed(tally)
        (app_dir / "release").unlink()
        (app_dir / "importing").unlink()
        # A crash: the replacement's socket listens only once its app is loaded.
        victim, survivor = sorted(workers_of(server))
        server_pid = server.proc.pid
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: lines(app_dir / "importing"), "the replacement to start importing")
        sockets = listening_sockets(server.port)
        assert len(sockets) == 1
        assert sockets[0][1] == {server_pid, survivor}
        assert {pid for _, pid in pids_answering(server.port, 60)} == {survivor}
        (app_dir / "release").touch()
        wait_for(lambda: len(listening_sockets(server.port)) == 2, "the replacement to listen")
        assert server.stop() == 0


# -- --reload ------------------------------------------------------------------------------------


def test_reload_restarts_the_worker_when_a_file_changes(app_dir: Path) -> None:
    with treadle_run(app_dir, "lifeapp:app", "--port", "0", "--reload") as server:
        assert f"treadle run: reload: watching the .py files under {app_dir}" in server.stderr
        ((_, first),) = pids_answering(server.port, 5)
        write_app(app_dir, "v2")

        def new_code() -> bool:
            # Every request is answered, by the old code or the new.
            return pids_answering(server.port, 1) != {("v1", first)}

        wait_for(new_code, "the new code to serve")
        assert {version for version, _ in pids_answering(server.port, 5)} == {"v2"}
        # Files that are not watched (not .py, or in a hidden folder), then
        # a new one that is: only the last is noticed, whenever the looks come.
        (app_dir / "notes.txt").write_text("not code\n")
        (app_dir / ".hidden").mkdir()
        (app_dir / ".hidden" / "ignored.py").write_text("X = 1\n")
        (app_dir / "sub").mkdir()
        (app_dir / "sub" / "helper.py").write_text("X = 1\n")
        wait_for(lambda: "reload: sub/helper.py changed" in server.stderr, "the second reload")
        assert [m[0] for m in log_lines(server, r"treadle run: reload: .* changed; .*")] == [
            "treadle run: reload: lifeapp.py changed; restarting the worker",
            "treadle run: reload: sub/helper.py changed; restarting the worker",
        ]
        assert server.stop() == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--reload", "--workers", "2"],
            "--reload is for development and restarts one worker; it cannot be used with "
            "--workers 2",
        ),
        (["--max-requests-jitter", "5"], "--max-requests-jitter needs --max-requests"),
    ],
)
def test_options_that_do_not_go_together(app_dir: Path, args: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "treadle", "run", "lifeapp:app", "--port", "0", *args],
        cwd=app_dir,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == f"treadle run: error: {message}\n"
