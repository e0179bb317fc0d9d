"""The WebSocket echo app on `websockets`: `python -m bench.apps.ws_websockets_app --port PORT`.

`websockets.asyncio.server.serve` on the stdlib loop, every message sent
back as it came (str as text, bytes as binary); any path. Compression off
(`compression=None`) and no keepalive pings (`ping_interval=None`: the other
servers send none either, and a ping is a frame the load generator would
have to skip).
"""

from __future__ import annotations

import asyncio

from websockets.asyncio.server import ServerConnection, serve

from . import launcher_args


async def echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


async def run(host: str, port: int, backlog: int) -> None:
    async with serve(
        echo, host, port, compression=None, ping_interval=None, backlog=backlog
    ) as server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    args = launcher_args(__doc__.split("\n")[0], argv)
    try:
        asyncio.run(run(args.host, args.port, args.backlog))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
