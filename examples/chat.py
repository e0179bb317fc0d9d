"""A chat room: `treadle run examples.chat:app`, then open http://127.0.0.1:8080/
in two browser windows.

- `/`     the page: a few lines of JavaScript that open a WebSocket to `/ws`
- `/ws`   the room: every text message a browser sends goes to everyone in it,
          as JSON `{"from": name, "text": ...}`; joins and leaves are announced

Each connection gets a name (`guest-N`, or `?name=`); the room is the set of
open WebSockets kept in the application. With `--workers N` each worker has a
room of its own (a shared one would need a broker such as Redis).
"""

from __future__ import annotations

import asyncio
import itertools
import json

from treadle import web

ROOM = web.AppKey("room", set[web.WebSocketResponse])
_guests = itertools.count(1)

PAGE = """<!doctype html>
<meta charset="utf-8">
<title>Treadle chat</title>
<style>
  body { font: 16px system-ui, sans-serif; max-width: 40em; margin: 2em auto; }
  #log { border: 1px solid #ccc; height: 20em; overflow-y: auto; padding: .5em; }
  .note { color: #777; }
</style>
<h1>Treadle chat</h1>
<div id="log"></div>
<form id="form">
  <input id="text" autocomplete="off" size="50" autofocus> <button>Send</button>
</form>
<script>
  const log = document.getElementById("log");
  const show = (text, cls) => {
    const line = document.createElement("div");
    line.textContent = text;
    if (cls) line.className = cls;
    log.append(line);
    log.scrollTop = log.scrollHeight;
  };
  const ws = new WebSocket(`ws://${location.host}/ws${location.search}`);
  ws.onmessage = (event) => {
    const msg = JSON.parse(event.data);
    if (msg.from) show(`${msg.from}: ${msg.text}`); else show(msg.text, "note");
  };
  ws.onclose = () => show("disconnected", "note");
  document.getElementById("form").onsubmit = (event) => {
    event.preventDefault();
    const input = document.getElementById("text");
    if (input.value) ws.send(input.value);
    input.value = "";
  };
</script>
"""


async def index(request: web.Request) -> web.Response:
    return web.Response(text=PAGE, content_type="text/html")


async def broadcast(room: set[web.WebSocketResponse], message: dict[str, str]) -> None:
    """Send `message` to everyone in the room; one slow or gone browser does
    not hold up the others (each send is its own task)."""
    data = json.dumps(message)
    sends = [ws.send_str(data) for ws in room if not ws.closed]
    for result in await asyncio.gather(*sends, return_exceptions=True):
        if isinstance(result, Exception) and not isinstance(result, ConnectionError):
            raise result


async def chat(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(heartbeat=30)
    await ws.prepare(request)
    name = request.query.get("name") or f"guest-{next(_guests)}"
    room = request.app[ROOM]
    room.add(ws)
    await broadcast(room, {"text": f"{name} joined ({len(room)} here)"})
    try:
        async for msg in ws:
            if msg.type == web.WSMsgType.TEXT:
                await broadcast(room, {"from": name, "text": msg.data})
    finally:
        room.discard(ws)
        await broadcast(room, {"text": f"{name} left"})
    return ws


def make_app() -> web.Application:
    """A fresh chat application."""
    application = web.Application()
    application[ROOM] = set()
    application.router.add_get("/", index)
    application.router.add_get("/ws", chat)
    return application


app = make_app()
