"""`treadle.web`: an aiohttp-style web framework on Treadle's HTTP/1.1 server.

    from treadle import web

    routes = web.RouteTableDef()

    @routes.get("/hello/{name}")
    async def hello(request):
        return web.Response(text=f"hello, {request.match_info['name']}!")

    app = web.Application()
    app.add_routes(routes)
    web.run_app(app)            # or: treadle run module:app

The API follows aiohttp's (Application, router, Request, Response,
middlewares, signals, run_app, AppRunner and sites) so aiohttp code ports by
changing the import. Where Treadle differs it is stricter; see the docstrings
of `router`, `app` and `request`, and docs/web.md.
"""

from __future__ import annotations

from ..websocket import WebSocketError, WSCloseCode, WSMessage, WSMsgType
from .app import AppKey, Application, CleanupContext, Signal, middleware
from .exceptions import *  # noqa: F403
from .exceptions import __all__ as _exceptions_all
from .files import FileResponse, StaticResource
from .multidict import CIMultiDict, MultiDict, MultiDictProxy
from .multipart import BodyPartReader, FormLimits, MultipartReader
from .request import ETag, FileField, JSONBadRequest, Request
from .response import ContentCoding, Response, StreamResponse, json_response
from .router import (
    URL,
    AbstractResource,
    DynamicResource,
    MatchInfo,
    PlainResource,
    ResourceRoute,
    RouteDef,
    RouteTableDef,
    StaticDef,
    UrlDispatcher,
    View,
    delete,
    get,
    head,
    patch,
    post,
    put,
    route,
    static,
    view,
)
from .runner import AppRunner, BaseSite, GracefulExit, SockSite, TCPSite, UnixSite, run_app
from .websocket import WebSocketReady, WebSocketResponse

__all__ = [
    "URL",
    "AbstractResource",
    "AppKey",
    "AppRunner",
    "Application",
    "BaseSite",
    "BodyPartReader",
    "CIMultiDict",
    "CleanupContext",
    "ContentCoding",
    "DynamicResource",
    "ETag",
    "FileField",
    "FileResponse",
    "FormLimits",
    "GracefulExit",
    "JSONBadRequest",
    "MatchInfo",
    "MultiDict",
    "MultiDictProxy",
    "MultipartReader",
    "PlainResource",
    "Request",
    "ResourceRoute",
    "Response",
    "RouteDef",
    "RouteTableDef",
    "Signal",
    "SockSite",
    "StaticDef",
    "StaticResource",
    "StreamResponse",
    "TCPSite",
    "UnixSite",
    "UrlDispatcher",
    "View",
    "WSCloseCode",
    "WSMessage",
    "WSMsgType",
    "WebSocketError",
    "WebSocketReady",
    "WebSocketResponse",
    "delete",
    "get",
    "head",
    "json_response",
    "middleware",
    "patch",
    "post",
    "put",
    "route",
    "run_app",
    "static",
    "view",
    *_exceptions_all,
]
