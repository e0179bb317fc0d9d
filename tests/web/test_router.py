"""The router on its own (no sockets: resolving is a pure function of the table
and the path). Long buckets go through a segment index; these tests hold it to
exactly what trying every resource in order gives."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from treadle import web
from treadle.web import router as router_module
from treadle.web.exceptions import HTTPException, HTTPMethodNotAllowed


async def handler(request: web.Request) -> web.Response:  # pragma: no cover
    return web.Response()


def outcome(router: web.UrlDispatcher, method: str, path: str) -> object:
    """What resolving gives, comparable across routers: the route's method and
    path with the match values, or the error's status (and Allow for 405)."""
    try:
        info = router.resolve(method, path)
    except HTTPMethodNotAllowed as exc:
        return (405, exc.headers.get("Allow"))
    except HTTPException as exc:
        return exc.status
    route = info.route
    return (route.method, route.resource.canonical, dict(info))  # type: ignore[union-attr]


def build(table: list[tuple[str, str]]) -> web.UrlDispatcher:
    """A router with `table`'s routes; a route that could never run (same path,
    a method already there) is left out, as registering it raises."""
    router = web.Application().router
    for method, path in table:
        try:
            router.add_route(method, path, handler)
        except RuntimeError:
            pass
    return router


def test_a_long_bucket_keeps_registration_order_405s_and_values() -> None:
    table = [("GET", f"/api/v{i}/{{id}}") for i in range(20)]
    table += [
        ("POST", "/api/{kind}/{id}"),  # default variables: indexed
        ("GET", "/api/{kind:[a-z]+}/{id:\\d+}"),  # simple custom regexes: indexed
        ("GET", "/api/{rest:.+}/edit"),  # a regex that may match '/': always tried
        ("GET", "/api/{dir:[a-z/]+}/raw"),  # a class that holds '/': always tried
        ("GET", "/api/{n:\\d*}/count"),  # may match an empty segment: always tried
        ("PUT", "/api/{kind}/{id}"),
        ("GET", "/api/x-{name}.json"),  # a segment mixing literal and variable
        ("GET", "/api/{kind}/{id}/"),
        ("GET", "/api/100%/{id}"),  # a literal '%' is '%25' in the still-encoded path
    ]
    router = build(table)
    assert len(router._buckets["api"]) > router_module._INDEX_AT
    # The literal-first pattern registered earlier wins over later wildcards.
    assert outcome(router, "GET", "/api/v3/7") == ("GET", "/api/v3/{id}", {"id": "7"})
    # /api/v3/7 also matches the POST and PUT patterns: their methods count.
    assert outcome(router, "POST", "/api/v3/7") == (
        "POST",
        "/api/{kind}/{id}",
        {"kind": "v3", "id": "7"},
    )
    assert outcome(router, "GET", "/api/abc/12") == (
        "GET",
        "/api/{kind:[a-z]+}/{id:\\d+}",
        {"kind": "abc", "id": "12"},
    )
    assert outcome(router, "DELETE", "/api/abc/12") == (405, "GET, POST, PUT")
    assert outcome(router, "GET", "/api/x-report.json") == (
        "GET",
        "/api/x-{name}.json",
        {"name": "report"},
    )
    assert outcome(router, "GET", "/api/a/b/") == (
        "GET",
        "/api/{kind}/{id}/",
        {"kind": "a", "id": "b"},
    )
    # Percent-encoding: decoded values, an encoded slash stays inside a segment.
    assert outcome(router, "POST", "/api/a%20b/c%2Fd") == (
        "POST",
        "/api/{kind}/{id}",
        {"kind": "a b", "id": "c/d"},
    )
    assert outcome(router, "GET", "/api/100%25/z") == ("GET", "/api/100%/{id}", {"id": "z"})
    assert outcome(router, "GET", "/api/a/b/c/edit") == (
        "GET",
        "/api/{rest:.+}/edit",
        {"rest": "a/b/c"},
    )
    assert outcome(router, "GET", "/api/a/b/raw") == (
        "GET",
        "/api/{dir:[a-z/]+}/raw",
        {"dir": "a/b"},
    )
    assert outcome(router, "GET", "/api//count") == ("GET", "/api/{n:\\d*}/count", {"n": ""})
    assert outcome(router, "GET", "/api/a/b/c") == 404
    assert outcome(router, "GET", "/api//b") == 404  # a variable needs a non-empty segment


def test_a_long_wild_list_and_a_sub_application_in_a_long_bucket() -> None:
    router = web.Application().router
    for i in range(12):
        router.add_get(f"/{{lang}}/page{i}", handler)
    sub = web.Application()
    sub.router.add_get("/inner", handler)
    app = web.Application()
    for i in range(12):
        app.router.add_get(f"/docs/{{v}}/p{i}", handler)
    app.add_subapp("/docs/old", sub)
    app.router.add_get("/docs/{v}/last", handler)
    assert outcome(router, "GET", "/en/page11") == ("GET", "/{lang}/page11", {"lang": "en"})
    assert outcome(router, "GET", "/en/page12") == 404
    assert outcome(app.router, "GET", "/docs/3/p4") == ("GET", "/docs/{v}/p4", {"v": "3"})
    assert outcome(app.router, "GET", "/docs/3/last") == ("GET", "/docs/{v}/last", {"v": "3"})
    info = app.router.resolve("GET", "/docs/old/inner")
    assert info.route.resource.canonical == "/inner"  # type: ignore[union-attr]


_SEGMENTS = st.sampled_from(
    [
        "a",
        "b",
        "api",
        "v1",
        "x.json",
        "%",
        "%25",
        "{p}",
        "{q}",
        "{r:[ab]+}",
        "{s:.*}",
        "{t:\\d*}",
        "{u:[0-9]{2}}",
        "{w:[a/]+}",
    ]
)
_PATHS = st.sampled_from(
    ["a", "b", "api", "v1", "x.json", "%25", "%2F", "ab", "zz", "", "a%20b", "12", "7"]
)
_FIRST = st.sampled_from(["api", "a", "zz"])


@settings(max_examples=300, deadline=None)
@given(
    table=st.lists(
        st.tuples(
            st.sampled_from(["GET", "POST", "*"]),
            # Few first segments, so buckets (and the wild list) grow long.
            st.tuples(st.sampled_from(["api", "{p}", "{s:.*}"]), st.lists(_SEGMENTS, max_size=3)),
            st.booleans(),
        ),
        min_size=12,
        max_size=40,
    ),
    paths=st.lists(st.tuples(_FIRST, st.lists(_PATHS, max_size=4)), min_size=1, max_size=10),
    method=st.sampled_from(["GET", "POST", "DELETE"]),
)
def test_the_index_gives_what_trying_every_resource_gives(
    table: list[tuple[str, tuple[str, list[str]], bool]],
    paths: list[tuple[str, list[str]]],
    method: str,
) -> None:
    routes: list[tuple[str, str]] = []
    for route_method, (first, rest), slash in table:
        segments = [first, *rest]
        # Variable names must be unique within one path.
        named = [
            s.replace("{p", f"{{p{i}").replace("{q", f"{{q{i}") for i, s in enumerate(segments)
        ]
        named = [s.replace("{r", f"{{r{i}").replace("{s", f"{{s{i}") for i, s in enumerate(named)]
        named = [s.replace("{t", f"{{t{i}").replace("{u", f"{{u{i}") for i, s in enumerate(named)]
        named = [s.replace("{w", f"{{w{i}") for i, s in enumerate(named)]
        routes.append((route_method, "/" + "/".join(named) + ("/" if slash else "")))
    indexed = build(routes)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(router_module, "_INDEX_AT", 10**9)
        linear = build(routes)
        expected = [outcome(linear, method, "/" + "/".join([f, *p])) for f, p in paths]
    got = [outcome(indexed, method, "/" + "/".join([f, *p])) for f, p in paths]
    assert got == expected
