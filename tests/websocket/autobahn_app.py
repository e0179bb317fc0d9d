"""The echo server the Autobahn case files drive (tests/websocket/test_autobahn.py):
every text and binary message back as it came, no size limit (section 9
sends 16 MiB messages), compression accepted when offered (sections 12-13).

    treadle run tests.websocket.autobahn_app:app --port 9001
"""

from __future__ import annotations

from treadle import web


async def echo(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(max_msg_size=0)
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == web.WSMsgType.TEXT:
            await ws.send_str(msg.data)
        elif msg.type == web.WSMsgType.BINARY:
            await ws.send_bytes(msg.data)
    return ws


app = web.Application()
app.router.add_get("/", echo)
