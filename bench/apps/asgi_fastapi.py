"""The benchmark app on FastAPI, a JSON route, for bench/asgi.py: `GET /hello/{name}`.

    treadle run bench.apps.asgi_fastapi:app --interface asgi
    uvicorn bench.apps.asgi_fastapi:app --loop uvloop --http httptools --no-access-log

The route is written as FastAPI's tutorial writes one: a typed path
parameter and a return annotation, so FastAPI validates the parameter and
serializes the dict through its response model (pydantic) to JSON. That is
most of a request's cost here; the server is the smaller part.
"""

from __future__ import annotations

from fastapi import FastAPI

__all__ = ["app"]

app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


@app.get("/hello/{name}")
async def hello(name: str) -> dict[str, str]:
    return {"message": f"hello, {name}!"}
