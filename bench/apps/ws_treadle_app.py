"""The WebSocket echo app on Treadle: `treadle run bench.apps.ws_treadle_app:app`.

`GET /ws` echoes each text and binary message through `web.WebSocketResponse`
(`compress=False`), the same handler as `ws_aiohttp_app` (`ws_routes_for`).
"""

from __future__ import annotations

from treadle import web

from . import ws_routes_for

app = web.Application()
app.add_routes(ws_routes_for(web))
