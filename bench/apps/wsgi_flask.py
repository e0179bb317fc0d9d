"""The benchmark app on Flask (WSGI), for bench/asgi.py: `GET /hello/<name>`, HTML.

    treadle run bench.apps.wsgi_flask:app --interface wsgi
    gunicorn -k gthread --threads 6 bench.apps.wsgi_flask:app
    granian --interface wsgi bench.apps.wsgi_flask:app

The same bytes as the ASGI hello apps (`text/html; charset=utf-8`, the name
HTML-escaped), from a synchronous view run in each server's threads.
"""

from __future__ import annotations

import html

from flask import Flask

__all__ = ["app"]

app = Flask(__name__)


@app.get("/hello/<name>")
def hello(name: str) -> str:
    return f"<h1>hello, {html.escape(name)}!</h1>"
