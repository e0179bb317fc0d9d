"""The WebSocket echo app on aiohttp: `python -m bench.apps.ws_aiohttp_app --port PORT [--uvloop]`.

The same handler as Treadle's (`ws_routes_for(aiohttp.web)`:
`web.WebSocketResponse(compress=False)`, each text and binary message sent
back), served by `web.run_app` with the access log off, on the stdlib loop
or (`--uvloop`) on uvloop.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from . import launcher_args, ws_routes_for

app = web.Application()
app.add_routes(ws_routes_for(web))


def main(argv: list[str] | None = None) -> None:
    args = launcher_args(__doc__.split("\n")[0], argv)
    loop: asyncio.AbstractEventLoop
    if args.uvloop:
        import uvloop

        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    web.run_app(
        app,
        host=args.host,
        port=args.port,
        backlog=args.backlog,
        access_log=None,
        print=None,
        loop=loop,
    )


if __name__ == "__main__":
    main()
