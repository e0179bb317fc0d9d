"""WebSockets under `treadle run`, as a user runs it: every worker of
`--workers 2` serves them, and SIGTERM closes the open ones with 1001
(going away) before the process exits 0."""

from __future__ import annotations

import os
import signal
import sys
from contextlib import ExitStack
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.web.test_cli import treadle_run, wait_for

APP = """
import os
from treadle import web


async def ws_pid(request):
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.send_str(str(os.getpid()))
    async for msg in ws:
        await ws.send_str(msg.data)
    return ws


app = web.Application()
app.router.add_get("/ws", ws_pid)
"""

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


@pytest.mark.parametrize("workers", [1, 2])
def test_every_worker_serves_websockets_and_sigterm_closes_them_with_1001(
    tmp_path: Path, workers: int
) -> None:
    (tmp_path / "wsapp.py").write_text(APP)
    with (
        treadle_run(tmp_path, "wsapp:app", "--port", "0", "--workers", str(workers)) as server,
        ExitStack() as stack,
    ):
        peers: dict[int, list[ClientConnection]] = {}

        def connected_to_every_worker() -> bool:
            url = f"ws://127.0.0.1:{server.port}/ws"
            peer = stack.enter_context(connect(url, open_timeout=10))
            peers.setdefault(int(peer.recv(timeout=10)), []).append(peer)
            return len(peers) == workers

        wait_for(connected_to_every_worker, f"WebSockets served by {workers} worker(s)")
        assert server.proc.pid not in peers or workers == 1
        everyone = [peer for group in peers.values() for peer in group]
        for i, peer in enumerate(everyone):
            peer.send(f"echo {i}")
            assert peer.recv(timeout=10) == f"echo {i}"
        server.proc.send_signal(signal.SIGTERM)
        for peer in everyone:
            with pytest.raises(ConnectionClosed):
                peer.recv(timeout=20)
            assert peer.close_code == 1001
        assert server.proc.wait(20) == 0
        for pid in peers:
            if pid != server.proc.pid:
                with pytest.raises(ProcessLookupError):
                    os.kill(pid, 0)
