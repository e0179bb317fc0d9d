"""examples/chat.py: the page, and a room of real WebSocket clients (the
`websockets` library's) on both loops: joins, messages to everyone, leaves."""

from __future__ import annotations

import asyncio
import json

import websockets

from examples.chat import make_app
from treadle.testing import TestClient

from ..conftest import run


def test_the_chat_room(loop: asyncio.AbstractEventLoop) -> None:
    async def main() -> None:
        async with TestClient(make_app()) as client:
            page = await client.get("/")
            assert page.status == 200 and "new WebSocket" in page.text
            url = f"ws://127.0.0.1:{client.port}/ws"
            async with websockets.connect(url + "?name=alice") as alice:
                assert json.loads(await alice.recv()) == {"text": "alice joined (1 here)"}
                async with websockets.connect(url + "?name=bob") as bob:
                    joined = {"text": "bob joined (2 here)"}
                    assert json.loads(await alice.recv()) == joined
                    assert json.loads(await bob.recv()) == joined
                    await bob.send("hi, alice")
                    said = {"from": "bob", "text": "hi, alice"}
                    assert json.loads(await alice.recv()) == said
                    assert json.loads(await bob.recv()) == said
                assert json.loads(await alice.recv()) == {"text": "bob left"}

    run(loop, main())
