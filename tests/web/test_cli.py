"""`treadle run` as real processes on real sockets, and `web.run_app` in-process.

The app the command serves is written to a temporary folder and named as
`cliapp:...` with that folder as the current directory, which also shows that
`module:app` is imported from the current directory. Its handlers report the
serving process's pid (to tell workers apart) and can be held in flight until
the test creates a file, so nothing here depends on timing. Every process is
started in a new session and its whole process group is killed at the end,
whatever happened.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run
from treadle import web
from treadle.cli import main
from treadle.web.runner import SERVING_GC_THRESHOLDS

ROOT = Path(__file__).resolve().parents[2]
DEADLINE = 20.0  # seconds: a bound on waiting for something that must happen

APP_SOURCE = '''
"""The app `treadle run` serves in tests/web/test_cli.py."""
import asyncio
import gc
import os
import time
from pathlib import Path

from treadle import web

HERE = Path(__file__).parent


async def pid(request):
    return web.Response(text=str(os.getpid()))


IN_FLIGHT = 0  # /slow requests this process is serving


async def slow(request):
    # In flight until the test creates the file "release"; each one adds a
    # line with its process's pid to the file "started" as it starts.
    global IN_FLIGHT
    IN_FLIGHT += 1
    try:
        with open(HERE / "started", "a") as f:
            f.write(f"{os.getpid()}\\n")
        while not (HERE / "release").exists():
            await asyncio.sleep(0.01)
    finally:
        IN_FLIGHT -= 1
    return web.Response(text="done")


async def gc_state(request):
    return web.Response(text=f"{gc.get_threshold()} {gc.get_freeze_count()}")


async def hang(request):
    # Waits until cancelled (by --handler-cancellation when the client goes).
    (HERE / "hanging").write_text(str(os.getpid()))
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        (HERE / "cancelled").write_text(str(os.getpid()))
        raise
    return web.Response(text="never")


async def block(request):
    # Blocks this worker's whole loop, so that only another worker can accept.
    (HERE / "blocked").write_text(str(os.getpid()))
    while not (HERE / "release").exists():
        time.sleep(0.01)
    return web.Response(text=str(os.getpid()))


async def record_cleanup(app):
    # "PID IN_FLIGHT": cleanup comes after the drain, so IN_FLIGHT must be 0.
    with open(HERE / "cleanup.log", "a") as f:
        f.write(f"{os.getpid()} {IN_FLIGHT}\\n")


LEFT_RUNNING = set()


async def leave_a_task_running(app):
    # A task the app never stops: closing the loop cancels it, and it then
    # holds the close until the test creates the file "let-go".
    async def lingering():
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            with open(HERE / "lingering", "a") as f:
                f.write(f"{os.getpid()}\\n")
            while not (HERE / "let-go").exists():
                await asyncio.sleep(0.01)
            with open(HERE / "lingered", "a") as f:
                f.write(f"{os.getpid()}\\n")
            raise

    LEFT_RUNNING.add(asyncio.get_running_loop().create_task(lingering()))


def make_app():
    app = web.Application()
    app.router.add_get("/pid", pid)
    app.router.add_get("/slow", slow)
    app.router.add_get("/block", block)
    app.router.add_get("/hang", hang)
    app.router.add_get("/gc", gc_state)
    app.on_cleanup.append(record_cleanup)
    return app


def make_lingering_app():
    app = make_app()
    app.on_startup.append(leave_a_task_running)
    return app


async def make_app_async():
    await asyncio.sleep(0)
    return make_app()


def make_nothing():
    return None


async def fail(app):
    raise RuntimeError("this app cannot start")


crashing = web.Application()
crashing.on_startup.append(fail)

app = make_app()
not_an_app = 42
'''


@pytest.fixture
def app_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder holding `cliapp.py`; forgets the module again afterwards."""
    (tmp_path / "cliapp.py").write_text(APP_SOURCE)
    (tmp_path / "cliapp_broken.py").write_text("import no_such_dependency_here\n")
    sys.modules.pop("cliapp", None)
    yield tmp_path
    sys.modules.pop("cliapp", None)
    sys.modules.pop("cliapp_broken", None)


def contents(path: Path) -> str:
    """The file's text, or "" while it does not exist (or is being written)."""
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def lines(path: Path) -> list[str]:
    """The file's complete lines (one being written is left out)."""
    text = contents(path)
    return text[: text.rfind("\n") + 1].splitlines()


def cleanups(app_dir: Path) -> dict[int, int]:
    """pid -> requests still in flight when that process ran `on_cleanup`."""
    found = {}
    for line in lines(app_dir / "cleanup.log"):
        pid, in_flight = line.split()
        found[int(pid)] = int(in_flight)
    return found


def wait_for(predicate: Callable[[], Any], what: str) -> Any:
    """Poll `predicate` until it returns something true; fail after DEADLINE."""
    end = time.monotonic() + DEADLINE
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.01)


class Running:
    """A `treadle run` process that has printed its banner."""

    def __init__(self, proc: subprocess.Popen[str], banner: str, stderr: Path) -> None:
        self.proc = proc
        self.banner = banner
        self._stderr = stderr
        match = re.search(r"http://127\.0\.0\.1:(\d+)", banner)
        self.port = int(match.group(1)) if match else 0

    @property
    def stderr(self) -> str:
        return self._stderr.read_text()

    def stop(self) -> int:
        """SIGTERM, and the exit status."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(DEADLINE)

    def signal_group(self, signum: int) -> None:
        """Signal the whole process group, as a terminal's Ctrl+C, systemd's
        default stop or `kill -TERM -PGID` do."""
        os.killpg(self.proc.pid, signum)


def subprocess_env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")


@contextmanager
def treadle_run(cwd: Path, *args: str, logs: Path | None = None) -> Iterator[Running]:
    """Start `python -m treadle run ARGS` in `cwd` and wait for its banner;
    its stderr goes to a file in `logs` (default: `cwd`)."""
    stderr = (logs or cwd) / f"stderr-{time.monotonic_ns()}.txt"
    with open(stderr, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "treadle", "run", *args],
            cwd=cwd,
            env=subprocess_env(),
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            start_new_session=True,
        )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], DEADLINE)
        banner = proc.stdout.readline() if ready else ""
        if not banner.startswith("======== Running on "):
            pytest.fail(f"no banner: {banner!r}; stderr: {stderr.read_text()}")
        yield Running(proc, banner.strip(), stderr)
    finally:
        # The parent, its workers, and any orphan: the whole process group.
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a Unix socket."""

    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=DEADLINE)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


def fetch(
    where: int | str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One request on a new connection (`where`: a TCP port or a socket path)."""
    conn = (
        UnixHTTPConnection(where)
        if isinstance(where, str)
        else http.client.HTTPConnection("127.0.0.1", where, timeout=DEADLINE)
    )
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def send_raw(port: int, path: str) -> socket.socket:
    """Open a connection and send a request without reading the answer."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return sock


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=DEADLINE).close()
    except (ConnectionRefusedError, ConnectionResetError):
        # Reset: the SYN reached the listening socket just as it closed.
        return True
    return False


# -- the command line ----------------------------------------------------------------------------


def test_no_arguments_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: treadle")
    assert "run" in err and "demo" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["cliapp"], "APP must look like 'module:attribute', got 'cliapp'"),
        (["no_such_module_xyz:app"], "no module named 'no_such_module_xyz'"),
        (["no_such_package_xyz.sub:app"], "no module named 'no_such_package_xyz'"),
        (["cliapp:nope"], "module 'cliapp' has no attribute 'nope'"),
        (["cliapp:not_an_app"], "'cliapp:not_an_app' is an int, not a web.Application"),
        (
            ["cliapp:make_app"],
            "is a function, not a web.Application or an ASGI 3 application (a WSGI app? add "
            "--interface wsgi) (a factory? add --factory)",
        ),
        (["--factory", "cliapp:not_an_app"], "--factory needs a callable"),
        (["--factory", "--port", "0", "cliapp:make_nothing"], "returned a NoneType"),
    ],
)
def test_a_bad_app_is_one_line_and_status_2(
    app_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(app_dir)
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert main(["run", *args]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("treadle run: error: ")
    assert message in err


def test_an_import_error_inside_the_app_keeps_its_traceback(
    app_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Not the user's typo but a bug in their module: the traceback says where.
    monkeypatch.chdir(app_dir)
    monkeypatch.setattr(sys, "path", list(sys.path))
    with pytest.raises(ModuleNotFoundError, match="no_such_dependency_here"):
        main(["run", "cliapp_broken:app"])


def test_a_busy_port_is_one_line(
    app_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(app_dir)
    monkeypatch.setattr(sys, "path", list(sys.path))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert main(["run", "cliapp:app", "--port", str(busy.getsockname()[1])]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("treadle run: error: cannot listen: ")


def test_workers_report_a_bad_app_once(app_dir: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "treadle", "run", "cliapp:nope", "--workers", "3", "--port", "0"],
        cwd=app_dir,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == "treadle run: error: module 'cliapp' has no attribute 'nope'\n"


def test_workers_that_keep_dying_at_startup_are_given_up(app_dir: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "treadle", "run", "cliapp:crashing", "--workers", "2"],
        cwd=app_dir,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=DEADLINE * 2,
        check=False,
    )
    assert result.returncode == 1
    assert "RuntimeError: this app cannot start" in result.stderr
    assert "starting another in 0.1 s" in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("treadle run: error: workers keep dying within 5 s of starting")
    assert last.endswith("giving up")


def test_hello_example_serves_every_route(tmp_path: Path) -> None:
    pytest.importorskip("treadle.web.files", reason="examples/hello.py needs static files")
    with treadle_run(ROOT, "examples.hello:app", "--port", "0", logs=tmp_path) as server:
        assert server.banner == (
            f"======== Running on http://127.0.0.1:{server.port} (1 worker) ========"
        )
        status, headers, body = fetch(server.port, "/")
        assert (status, headers["Content-Type"]) == (200, "text/html; charset=utf-8")
        assert b"<h1>Treadle</h1>" in body
        status, _, body = fetch(server.port, "/hello/world")
        assert (status, body) == (200, b"<h1>hello, world!</h1>")
        status, headers, body = fetch(server.port, "/api/greeting?name=you")
        assert (status, body) == (200, b'{"greeting": "hello", "name": "you"}')
        status, _, body = fetch(server.port, "/static/style.css")
        assert (status, body) == (200, (ROOT / "examples/static/style.css").read_bytes())
        assert server.stop() == 0


def test_factory_and_access_log(app_dir: Path) -> None:
    with treadle_run(
        app_dir, "cliapp:make_app_async", "--factory", "--access-log", "--port", "0"
    ) as server:
        headers = {"User-Agent": "test-agent/1.0", "Referer": "http://example.com/"}
        status, _, body = fetch(server.port, "/pid", headers)
        assert (status, body) == (200, str(server.proc.pid).encode())
        assert server.stop() == 0
        combined = re.compile(
            r'127\.0\.0\.1 - - \[\d\d/\w\w\w/\d{4}:\d\d:\d\d:\d\d \+0000\] "GET /pid HTTP/1\.1" '
            r'200 (\d+|-) "http://example\.com/" "test-agent/1\.0" \d+\.\d+'
        )
        assert [line for line in server.stderr.splitlines() if combined.fullmatch(line)]


def test_handler_cancellation_flag(app_dir: Path) -> None:
    """`--handler-cancellation`: the handler of a client that goes away is
    cancelled, and the server serves on."""
    with treadle_run(app_dir, "cliapp:app", "--handler-cancellation", "--port", "0") as server:
        sock = send_raw(server.port, "/hang")
        wait_for(lambda: contents(app_dir / "hanging"), "the handler to start")
        sock.close()
        assert wait_for(lambda: contents(app_dir / "cancelled"), "the handler to be cancelled")
        assert fetch(server.port, "/pid")[0] == 200
        assert server.stop() == 0


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_stops_gracefully(app_dir: Path, workers: int) -> None:
    with treadle_run(
        app_dir, "cliapp:app", "--port", "0", "--workers", str(workers), "--shutdown-timeout", "60"
    ) as server:
        assert server.banner.endswith(f"({workers} worker{'s' if workers > 1 else ''}) ========")
        assert fetch(server.port, "/pid")[0] == 200
        in_flight = send_raw(server.port, "/slow")
        try:
            busy = int(wait_for(lambda: lines(app_dir / "started"), "the slow request to start")[0])
            server.proc.send_signal(signal.SIGTERM)
            # New connections are refused while the request is still in flight...
            wait_for(lambda: refused(server.port), "the listening sockets to close")
            # ...and the process serving it has not cleaned up (an idle worker may have).
            assert busy not in cleanups(app_dir)
            (app_dir / "release").touch()
            # ...which completes, and says the connection closes.
            head, _, body = read_all(in_flight).partition(b"\r\n\r\n")
        finally:
            in_flight.close()
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"\r\nConnection: close" in head
        assert body == b"done"
        assert server.proc.wait(DEADLINE) == 0
        # Each worker ran its cleanup signals, after its drain; the access log was off.
        done = cleanups(app_dir)
        assert len(done) == workers and busy in done
        assert set(done.values()) == {0}
        assert "GET /" not in server.stderr


def test_sigterm_to_the_process_group_lets_every_worker_drain(app_dir: Path) -> None:
    """What systemd's default stop and `kill -TERM -PGID` do: the signal
    reaches the parent and each worker, and the parent passes it on too. A
    worker told twice goes on with its drain."""
    with treadle_run(
        app_dir, "cliapp:app", "--port", "0", "--workers", "3", "--shutdown-timeout", "60"
    ) as server:
        requests = [send_raw(server.port, "/slow") for _ in range(8)]

        def all_started() -> list[str]:
            started = lines(app_dir / "started")
            return started if len(started) == 8 else []

        try:
            busy = {int(pid) for pid in wait_for(all_started, "8 requests in flight")}
            server.signal_group(signal.SIGTERM)
            wait_for(lambda: refused(server.port), "the listening sockets to close")
            # The kernel merges a signal still pending with the same one sent
            # again, so the parent's SIGTERM may reach a worker as one delivery
            # with the group's. Once more, then, for certain during the drain.
            for pid in busy:
                with suppress(ProcessLookupError):  # gone: the answers below tell why
                    os.kill(pid, signal.SIGTERM)
            assert server.proc.poll() is None  # the parent waits for the drain
            (app_dir / "release").touch()
            answers = [read_all(sock).partition(b"\r\n\r\n") for sock in requests]
        finally:
            for sock in requests:
                sock.close()
        assert [head.partition(b"\r\n")[0] for head, _, _ in answers] == [b"HTTP/1.1 200 OK"] * 8
        assert [body for _, _, body in answers] == [b"done"] * 8
        assert server.proc.wait(DEADLINE) == 0
        done = cleanups(app_dir)
        assert len(done) == 3 and set(done.values()) == {0}
        assert busy <= set(done)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_second_sigterm_does_not_cut_the_drain_short(app_dir: Path, workers: int) -> None:
    with treadle_run(
        app_dir, "cliapp:app", "--port", "0", "--workers", str(workers), "--shutdown-timeout", "60"
    ) as server:
        in_flight = send_raw(server.port, "/slow")
        try:
            wait_for(lambda: lines(app_dir / "started"), "the slow request to start")
            server.proc.send_signal(signal.SIGTERM)
            wait_for(lambda: refused(server.port), "the listening sockets to close")
            server.proc.send_signal(signal.SIGTERM)
            wait_for(
                lambda: "already stopping" in server.stderr or server.proc.poll() is not None,
                "the second SIGTERM to be noted",
            )
            assert server.proc.poll() is None
            (app_dir / "release").touch()
            head, _, body = read_all(in_flight).partition(b"\r\n\r\n")
        finally:
            in_flight.close()
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert body == b"done"
        assert server.proc.wait(DEADLINE) == 0
        assert "treadle run: SIGTERM: already stopping gracefully" in server.stderr
        done = cleanups(app_dir)
        assert len(done) == workers and set(done.values()) == {0}


@pytest.mark.parametrize("workers", [1, 2])
def test_ctrl_c_twice_cuts_the_drain_short(app_dir: Path, workers: int) -> None:
    """Ctrl+C reaches the whole process group; pressed again while the drain
    waits, it gives the drain up. The slow request is never released and the
    drain could take a minute, so the process ending at all shows it."""
    with treadle_run(
        app_dir, "cliapp:app", "--port", "0", "--workers", str(workers), "--shutdown-timeout", "60"
    ) as server:
        in_flight = send_raw(server.port, "/slow")
        try:
            wait_for(lambda: lines(app_dir / "started"), "the slow request to start")
            server.signal_group(signal.SIGINT)
            wait_for(lambda: refused(server.port), "the listening sockets to close")
            server.signal_group(signal.SIGINT)
            assert server.proc.wait(DEADLINE) == 1
        finally:
            in_flight.close()
        if workers == 1:
            assert "SIGINT while stopping: the graceful stop was cut short" in server.stderr
        else:
            assert "SIGINT while stopping: killing the workers" in server.stderr


@pytest.mark.parametrize("workers", [1, 2])
def test_a_sigterm_while_closing_the_loop_is_ignored(app_dir: Path, workers: int) -> None:
    """The parent passes a stop on as SIGTERM even to workers that had the
    signal themselves, so it may reach one that has drained and is closing
    its loop. That does not end the process before its close is done."""
    with treadle_run(
        app_dir, "cliapp:make_lingering_app", "--factory", "--port", "0", "--workers", str(workers)
    ) as server:
        server.signal_group(signal.SIGTERM)
        # The app's leftover task holds each process in its loop's close.
        closing = wait_for(
            lambda: len(lines(app_dir / "lingering")) == workers and lines(app_dir / "lingering"),
            "the loops to close",
        )
        # A late SIGTERM, as from the parent (with one process: to itself).
        for pid in map(int, closing):
            os.kill(pid, signal.SIGTERM)
        (app_dir / "let-go").touch()
        assert server.proc.wait(DEADLINE) == 0
        assert len(lines(app_dir / "lingered")) == workers
        assert len(cleanups(app_dir)) == workers


def test_two_workers_answer_and_a_killed_one_is_replaced(app_dir: Path) -> None:
    with treadle_run(app_dir, "cliapp:app", "--port", "0", "--workers", "2") as server:
        # SO_REUSEPORT spreads connections by their address hash: new
        # connections reach both workers.
        pids: set[int] = set()
        for _ in range(200):
            pids.add(int(fetch(server.port, "/pid")[2]))
            if len(pids) == 2:
                break
        assert len(pids) == 2
        assert server.proc.pid not in pids
        victim, survivor = sorted(pids)
        os.kill(victim, signal.SIGKILL)
        seen: set[int] = set()

        def replaced() -> bool:
            try:
                seen.add(int(fetch(server.port, "/pid")[2]))
            except (ConnectionError, http.client.HTTPException):
                pass  # a connection queued on the killed worker's socket
            return survivor in seen and len(seen - pids) > 0

        wait_for(replaced, "a new worker to answer")
        assert f"worker {victim} was killed by SIGKILL; starting another" in server.stderr
        assert server.stop() == 0
        # The killed worker ran no cleanup; the survivor and the new one did.
        assert sorted(cleanups(app_dir)) == sorted(seen - {victim})


def test_unix_socket_shared_by_two_workers(app_dir: Path) -> None:
    path = str(app_dir / "treadle.sock")
    with treadle_run(app_dir, "cliapp:app", "--unix", path, "--workers", "2") as server:
        assert server.banner == f"======== Running on http://unix:{path}: (2 workers) ========"
        assert fetch(path, "/pid")[0] == 200
        # Both workers accept from the one inherited socket: while one is
        # blocked, the other answers.
        blocked = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            blocked.settimeout(DEADLINE)
            blocked.connect(path)
            blocked.sendall(b"GET /block HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            blocked_pid = int(wait_for(lambda: contents(app_dir / "blocked"), "a worker to block"))
            other_pid = int(fetch(path, "/pid")[2])
            (app_dir / "release").touch()
            assert read_all(blocked).endswith(str(blocked_pid).encode())
        finally:
            blocked.close()
        assert other_pid != blocked_pid
        assert server.stop() == 0
    assert not os.path.exists(path)


def listening_sockets(port: int) -> list[tuple[int, set[int]]]:
    """Each socket listening on the TCP port, as the kernel reports it to
    `ss`: its backlog (for a listening socket `ss` shows it as Send-Q) and
    the pids of the processes that hold it."""
    if not sys.platform.startswith("linux") or shutil.which("ss") is None:
        pytest.skip("needs Linux and ss (iproute2)")
    out = subprocess.run(
        ["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout
    found = []
    for line in out.splitlines():
        _state, _recv_q, send_q, *_ = line.split()
        found.append((int(send_q), {int(pid) for pid in re.findall(r"pid=(\d+)", line)}))
    return found


@pytest.mark.parametrize("workers", [1, 2])
def test_backlog_is_the_listen_queue_length(app_dir: Path, workers: int) -> None:
    with treadle_run(
        app_dir, "cliapp:app", "--port", "0", "--workers", str(workers), "--backlog", "37"
    ) as server:
        assert [backlog for backlog, _ in listening_sockets(server.port)] == [37] * workers
        assert server.stop() == 0


@pytest.mark.parametrize("reuse_port", [True, False])
def test_no_reuse_port_shares_one_socket(app_dir: Path, reuse_port: bool) -> None:
    flag = [] if reuse_port else ["--no-reuse-port"]
    with treadle_run(app_dir, "cliapp:app", "--port", "0", "--workers", "2", *flag) as server:
        sockets = listening_sockets(server.port)
        parent = server.proc.pid
        if reuse_port:
            # One socket per worker, which the parent keeps open too (a
            # worker's replacement takes it over: tests/web/test_lifecycle.py).
            assert len(sockets) == 2
            (_, first), (_, second) = sockets
            assert len(first) == len(second) == 2 and first != second
            assert first & second == {parent}
        else:
            # One socket, which the parent binds and both workers inherit.
            assert len(sockets) == 1
            (_, holders) = sockets[0]
            assert parent in holders and len(holders) == 3
        assert server.stop() == 0


def interpreter_gc_defaults() -> str:
    result = subprocess.run(
        [sys.executable, "-c", "import gc; print(gc.get_threshold(), gc.get_freeze_count())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("tuning", [True, False])
def test_no_gc_tuning_leaves_the_collector_alone(app_dir: Path, workers: int, tuning: bool) -> None:
    flag = [] if tuning else ["--no-gc-tuning"]
    with treadle_run(
        app_dir, "cliapp:app", "--port", "0", "--workers", str(workers), *flag
    ) as server:
        status, _, body = fetch(server.port, "/gc")
        assert status == 200
        threshold, _, frozen = body.decode().rpartition(" ")
        if tuning:
            assert threshold == str(SERVING_GC_THRESHOLDS)
            assert int(frozen) > 0
        else:
            assert f"{threshold} {frozen}" == interpreter_gc_defaults()
        assert server.stop() == 0


# -- web.run_app in-process --------------------------------------------------------------------


async def _request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str) -> bytes:
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return await reader.read()


def _sigterm_self() -> None:
    # Only if run_app installed its handler: the default would end pytest.
    assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None)
    os.kill(os.getpid(), signal.SIGTERM)


def test_run_app_listens_everywhere_and_stops_gracefully(
    loop: asyncio.AbstractEventLoop, tmp_path: Path
) -> None:
    started = asyncio.Event()
    release = asyncio.Event()
    cleaned: list[bool] = []

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hi")

    async def slow(request: web.Request) -> web.Response:
        started.set()
        await release.wait()
        return web.Response(text="done")

    async def on_cleanup(app: web.Application) -> None:
        cleaned.append(True)

    app = web.Application()
    app.router.add_get("/", hello)
    app.router.add_get("/slow", slow)
    app.on_cleanup.append(on_cleanup)
    path = str(tmp_path / "app.sock")
    presock = socket.socket()
    presock.bind(("127.0.0.1", 0))
    sock_port = presock.getsockname()[1]
    printed: list[str] = []
    clients: list[asyncio.Task[dict[str, Any]]] = []

    async def client(tcp_port: int) -> dict[str, Any]:
        results: dict[str, Any] = {}
        for name, opener in [
            ("tcp", lambda: asyncio.open_connection("127.0.0.1", tcp_port)),
            ("unix", lambda: asyncio.open_unix_connection(path)),
            ("sock", lambda: asyncio.open_connection("127.0.0.1", sock_port)),
        ]:
            reader, writer = await opener()
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            results[name] = (await reader.read()).endswith(b"\r\n\r\nhi")
            writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", tcp_port)
        response = asyncio.ensure_future(_request(reader, writer, "/slow"))
        await started.wait()
        _sigterm_self()
        while True:  # until every listening socket is closed
            try:
                _, probe = await asyncio.open_connection("127.0.0.1", tcp_port)
                probe.close()
                await asyncio.sleep(0.01)
            except ConnectionRefusedError:
                break
        results["cleaned before release"] = bool(cleaned)
        release.set()
        results["slow"] = await response
        writer.close()
        return results

    def print_(text: str) -> None:
        printed.append(text)
        match = re.search(r"http://127\.0\.0\.1:(\d+)", text)
        assert match is not None
        clients.append(loop.create_task(client(int(match.group(1)))))

    web.run_app(
        app,
        host="127.0.0.1",
        port=0,
        path=path,
        sock=presock,
        shutdown_timeout=DEADLINE,
        print=print_,
        loop=loop,
    )
    results = run(loop, clients[0])
    assert printed[0].startswith("======== Running on http://127.0.0.1:")
    assert f"http://unix:{path}:" in printed[0]
    assert (results["tcp"], results["unix"], results["sock"]) == (True, True, True)
    assert results["cleaned before release"] is False
    head, _, body = results["slow"].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and b"\r\nConnection: close" in head
    assert body == b"done"
    assert cleaned == [True]
    assert presock.fileno() == -1  # closed with its site


def test_run_app_shutdown_timeout_aborts_what_is_left(loop: asyncio.AbstractEventLoop) -> None:
    started = asyncio.Event()
    cleaned: list[bool] = []

    async def forever(request: web.Request) -> web.Response:
        started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def on_cleanup(app: web.Application) -> None:
        cleaned.append(True)

    app = web.Application()
    app.router.add_get("/forever", forever)
    app.on_cleanup.append(on_cleanup)
    clients: list[asyncio.Task[bytes]] = []

    async def client(port: int) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        response = asyncio.ensure_future(_request(reader, writer, "/forever"))
        await started.wait()
        _sigterm_self()
        try:
            return await response
        finally:
            writer.close()

    def print_(text: str) -> None:
        match = re.search(r"http://127\.0\.0\.1:(\d+)", text)
        assert match is not None
        clients.append(loop.create_task(client(int(match.group(1)))))

    web.run_app(app, host="127.0.0.1", port=0, shutdown_timeout=0.05, print=print_, loop=loop)
    assert run(loop, clients[0]) == b""  # aborted: no response at all
    assert cleaned == [True]
