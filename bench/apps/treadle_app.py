"""The benchmark app on Treadle's web framework: `treadle run bench.apps.treadle_app:app`.

`python -m bench.apps.treadle_app --port PORT` is the fallback launcher for
when `treadle run` is not there: `web.run_app` on a Treadle loop, access log
off, no banner.
"""

from __future__ import annotations

from treadle import web

from . import launcher_args, routes_for

app = web.Application()
app.add_routes(routes_for(web))


def main(argv: list[str] | None = None) -> None:
    args = launcher_args(__doc__.split("\n")[0], argv)
    web.run_app(
        app, host=args.host, port=args.port, backlog=args.backlog, access_log=None, print=None
    )


if __name__ == "__main__":
    main()
