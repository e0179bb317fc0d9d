"""URL routing: resources, routes, `RouteTableDef`, class-based views.

A *resource* is a path (`/users`) or a pattern (`/users/{id}`, `/files/{path:.*}`);
a *route* is a resource plus a method plus a handler. Resolving a request
finds the resource first, then the route for its method: 404 when no
resource matches, 405 (with `Allow`) when one matches but not for this method.

Matching cost does not grow with the number of routes for plain paths: they
sit in a dict keyed by path. Patterns are bucketed by their first path
segment when it is literal (`/users/{id}` goes in the `users` bucket), so a
request only tries the patterns that could match it; a long bucket is narrowed
further by a trie of path segments (`_SegmentIndex`), so a thousand patterns
under `/api/` cost what ten do. Decisions that differ
from aiohttp, which tries every resource in registration order:

- A plain path wins over a pattern that also matches (`/users/me` over
  `/users/{id}`), whatever the order they were added in.
- Percent-decoding happens before matching, except for `%2F` and `%25`: an
  encoded slash never splits a path segment (`/files/a%2Fb` gives
  `{name}` = `a/b`, it does not match `/files/a/b`). Malformed escapes or
  escapes that are not UTF-8 get 400 instead of being passed through.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Generator, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from .exceptions import HTTPBadRequest, HTTPException, HTTPMethodNotAllowed, HTTPNotFound

if TYPE_CHECKING:
    from .app import Application
    from .request import Request
    from .response import StreamResponse

__all__ = [
    "URL",
    "AbstractResource",
    "DynamicResource",
    "MatchInfo",
    "PlainResource",
    "ResourceRoute",
    "RouteDef",
    "RouteTableDef",
    "StaticDef",
    "UrlDispatcher",
    "View",
    "delete",
    "get",
    "head",
    "patch",
    "post",
    "put",
    "route",
    "static",
    "view",
]

Handler = Callable[["Request"], Awaitable["StreamResponse"]]

METH_ANY = "*"
_METHOD_RE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_ROUTE_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_.:\-]*$")
_DEFAULT_SEGMENT = r"[^{}/]+"
_HEX = "0123456789abcdefABCDEF"


# -- percent-decoding --------------------------------------------------------------------


def decode_path(raw: str, *, keep_slash: bool) -> str:
    """Percent-decode a path. With `keep_slash`, `%2F` and `%25` stay encoded
    (the form routes are matched in). Raises HTTPBadRequest for a malformed
    escape or bytes that are not UTF-8."""
    if "%" not in raw:
        return raw
    out = bytearray()
    i = 0
    n = len(raw)
    while i < n:
        c = raw[i]
        if c != "%":
            out += c.encode("utf-8")
            i += 1
            continue
        hexpair = raw[i + 1 : i + 3]
        if len(hexpair) != 2 or hexpair[0] not in _HEX or hexpair[1] not in _HEX:
            raise HTTPBadRequest(text=f"400: Bad Request (malformed percent-escape in {raw!r})")
        if keep_slash and hexpair.upper() in ("2F", "25"):
            out += b"%" + hexpair.upper().encode()
        else:
            out.append(int(hexpair, 16))
        i += 3
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPBadRequest(text="400: Bad Request (path is not valid UTF-8)") from None


def _unescape_capture(value: str) -> str:
    # Captures come from the routing form: finish decoding what it kept.
    if "%" in value:
        value = value.replace("%2F", "/").replace("%25", "%")
    return value


def _quote_part(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


# -- URLs built by url_for -----------------------------------------------------------------


class URL(str):
    """A path built by `url_for()`: a `str`, plus `with_query()` (as yarl's
    URL offers, for code written against aiohttp)."""

    __slots__ = ()

    @property
    def path(self) -> str:
        return self.partition("?")[0]

    @property
    def query_string(self) -> str:
        return self.partition("?")[2]

    def with_query(
        self, query: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None, **kwargs: Any
    ) -> URL:
        """The same path with `query` (a mapping or pairs) as its query string."""
        from urllib.parse import urlencode

        pairs = list(query.items() if isinstance(query, Mapping) else (query or ()))
        pairs += list(kwargs.items())
        encoded = urlencode([(k, str(v)) for k, v in pairs])
        return URL(self.path + ("?" + encoded if encoded else ""))


# -- match results -------------------------------------------------------------------------


class MatchInfo(dict[str, str]):
    """The decoded values of a route's `{variables}`, plus what matched."""

    __slots__ = ("_apps", "route")

    # Made per request by `_match_info()`, without a Python-level __init__.
    route: ResourceRoute
    _apps: tuple[Application, ...]

    @property
    def handler(self) -> Handler:
        return self.route.handler

    @property
    def apps(self) -> tuple[Application, ...]:
        """The application chain, outermost first (sub-applications nest)."""
        return self._apps

    @property
    def current_app(self) -> Application:
        return self._apps[-1]

    def __repr__(self) -> str:
        return f"<MatchInfo {dict.__repr__(self)}: {self.route!r}>"


def _match_info(values: dict[str, str] | None, route: ResourceRoute) -> MatchInfo:
    info = MatchInfo(values) if values else MatchInfo()
    info.route = route
    info._apps = ()
    return info


# -- routes and resources -----------------------------------------------------------------


class ResourceRoute:
    """One method on one resource, served by one handler."""

    __slots__ = ("_chain", "handler", "method", "resource")

    def __init__(self, method: str, handler: Any, resource: AbstractResource) -> None:
        self.method = method
        self.handler: Handler = _as_handler(handler)
        self.resource = resource
        # The handler wrapped in the application's middlewares; set at freeze.
        self._chain: Handler = self.handler

    @property
    def name(self) -> str | None:
        return self.resource.name

    def url_for(self, *args: str, **kwargs: str) -> URL:
        return self.resource.url_for(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<ResourceRoute [{self.method}] {self.resource.canonical} -> {self.handler!r}>"


def _as_handler(handler: Any) -> Handler:
    """Check a handler; a plain function (returning a response or an
    awaitable) is wrapped so the dispatcher can always await it."""
    if isinstance(handler, type) and issubclass(handler, View):
        return handler
    if not callable(handler):
        raise TypeError(f"a web handler must be callable, got {handler!r}")
    if inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        getattr(handler, "__call__", None)  # noqa: B004
    ):
        return handler  # type: ignore[no-any-return]

    async def call(request: Request) -> StreamResponse:
        result = handler(request)
        if inspect.isawaitable(result):
            result = await result
        return result  # type: ignore[no-any-return]

    call.__wrapped__ = handler  # type: ignore[attr-defined]
    return call


class AbstractResource:
    """Something a request path can match; holds a route per method."""

    def __init__(self, name: str | None = None) -> None:
        if name is not None and not _ROUTE_NAME_RE.match(name):
            raise ValueError(
                f"Incorrect route name {name!r}, the name should be a sequence of python "
                "identifiers separated by dash, dot or column"
            )
        self.name = name
        self.routes: dict[str, ResourceRoute] = {}

    @property
    def canonical(self) -> str:
        raise NotImplementedError

    def add_route(self, method: str, handler: Any) -> ResourceRoute:
        method = method.upper()
        if method != METH_ANY and not _METHOD_RE.match(method):
            raise ValueError(f"{method!r} is not allowed HTTP method")
        if method in self.routes or METH_ANY in self.routes:
            raise RuntimeError(
                f"Added route will never be executed, method {method} is already registered"
            )
        route = ResourceRoute(method, handler, self)
        self.routes[method] = route
        return route

    def route_for(self, method: str) -> ResourceRoute | None:
        routes = self.routes
        return routes.get(method) or routes.get(METH_ANY)

    @property
    def allowed_methods(self) -> set[str]:
        return set(self.routes)

    def match(self, path: str) -> dict[str, str] | None:
        """The captured values if `path` (routing form) matches, else None."""
        raise NotImplementedError

    def url_for(self, *args: str, **kwargs: str) -> URL:
        raise NotImplementedError

    def __iter__(self) -> Iterator[ResourceRoute]:
        return iter(self.routes.values())

    def __len__(self) -> int:
        return len(self.routes)


class PlainResource(AbstractResource):
    """A fixed path, matched by dict lookup."""

    def __init__(self, path: str, name: str | None = None) -> None:
        super().__init__(name)
        self._path = path
        self.key = path.replace("%", "%25")  # the routing form

    @property
    def canonical(self) -> str:
        return self._path

    def match(self, path: str) -> dict[str, str] | None:
        return {} if path == self.key else None

    def url_for(self, *args: str, **kwargs: str) -> URL:
        if args or kwargs:
            raise TypeError(f"{self._path!r} has no variables to fill in")
        from urllib.parse import quote

        return URL(quote(self._path, safe="/@:!$&'()*+,;=-._~"))

    def __repr__(self) -> str:
        name = f"'{self.name}' " if self.name else ""
        return f"<PlainResource {name}{self._path}>"


def parse_pattern(path: str) -> tuple[list[str | tuple[str, str]], bool]:
    """Split a route path into literal parts and (name, regex) variables."""
    parts: list[str | tuple[str, str]] = []
    literal = []
    i = 0
    dynamic = False
    while i < len(path):
        c = path[i]
        if c == "}":
            raise ValueError(f"Invalid route path {path!r}: unbalanced '}}'")
        if c != "{":
            literal.append(c)
            i += 1
            continue
        depth, j = 1, i + 1
        while j < len(path) and depth:
            depth += {"{": 1, "}": -1}.get(path[j], 0)
            j += 1
        if depth:
            raise ValueError(f"Invalid route path {path!r}: unbalanced '{{'")
        body = path[i + 1 : j - 1]
        name, sep, regex = body.partition(":")
        if not _NAME_RE.match(name):
            raise ValueError(f"Invalid variable name {name!r} in route path {path!r}")
        if sep and not regex:
            raise ValueError(f"Empty regular expression for {name!r} in route path {path!r}")
        if literal:
            parts.append("".join(literal))
            literal = []
        parts.append((name, regex if sep else _DEFAULT_SEGMENT))
        dynamic = True
        i = j
    if literal:
        parts.append("".join(literal))
    return parts, dynamic


class DynamicResource(AbstractResource):
    """A path with `{variables}`, matched by a regular expression."""

    def __init__(self, path: str, name: str | None = None) -> None:
        super().__init__(name)
        self._path = path
        parts, _ = parse_pattern(path)
        self._parts = parts
        regex = []
        names: set[str] = set()
        for part in parts:
            if isinstance(part, str):
                regex.append(re.escape(part.replace("%", "%25")))
            else:
                var, pattern = part
                if var in names:
                    raise ValueError(f"Duplicate variable {var!r} in route path {path!r}")
                names.add(var)
                regex.append(f"(?P<{var}>{pattern})")
        try:
            self._regex = re.compile("".join(regex) + r"\Z")
        except re.error as exc:
            raise ValueError(f"Bad pattern {path!r}: {exc}") from None
        first = parts[0]
        # The first segment, when literal, is the bucket key ('' for root patterns).
        self.bucket: str | None = None
        if isinstance(first, str):
            segment = first[1:].split("/", 1)
            if len(segment) == 2 or len(parts) == 1:
                self.bucket = segment[0].replace("%", "%25")

    @property
    def canonical(self) -> str:
        return self._path

    def _fast_entry(self) -> _FastEntry:
        """How the router's fast path matches this pattern: a literal prefix
        and one default `{name}` at the end are matched without the regex."""
        parts = self._parts
        if (
            len(parts) == 2
            and isinstance(parts[0], str)
            and isinstance(parts[1], tuple)
            and parts[1][1] == _DEFAULT_SEGMENT
            and "%" not in parts[0]
        ):
            return (parts[0], parts[1][0], None, self.routes)
        return (None, None, self._regex.match, self.routes)

    def match(self, path: str) -> dict[str, str] | None:
        m = self._regex.match(path)
        if m is None:
            return None
        values = m.groupdict()
        if "%" in path:
            return {k: _unescape_capture(v) for k, v in values.items()}
        return values

    def url_for(self, *args: str, **kwargs: str) -> URL:
        if args:
            raise TypeError("url_for() takes keyword arguments only: the variable values")
        out = []
        missing = []
        for part in self._parts:
            if isinstance(part, str):
                out.append(part)
            else:
                name = part[0]
                if name not in kwargs:
                    missing.append(name)
                    continue
                out.append(_quote_part(str(kwargs.pop(name))))
        if missing:
            raise KeyError(f"url_for() for {self._path!r} needs {', '.join(missing)}")
        if kwargs:
            raise TypeError(f"unexpected variables for {self._path!r}: {', '.join(kwargs)}")
        from urllib.parse import quote

        return URL(quote("".join(out), safe="/@:!$&'()*+,;=-._~%"))

    def __repr__(self) -> str:
        name = f"'{self.name}' " if self.name else ""
        return f"<DynamicResource {name}{self._path}>"


class PrefixResource(AbstractResource):
    """A resource that owns every path under a prefix (static files, sub-apps)."""

    def __init__(self, prefix: str, name: str | None = None) -> None:
        super().__init__(name)
        if not prefix.startswith("/"):
            raise ValueError("prefix should start with '/'")
        self._prefix = prefix.rstrip("/")
        self.key = self._prefix.replace("%", "%25")

    @property
    def canonical(self) -> str:
        return self._prefix

    @property
    def bucket(self) -> str:
        return self.key[1:].split("/", 1)[0]

    def match(self, path: str) -> dict[str, str] | None:
        key = self.key
        if path == key or path.startswith(key + "/"):
            return {"tail": _unescape_capture(path[len(key) :])}
        return None


# -- the dispatcher ----------------------------------------------------------------------


# (literal prefix, variable name, None, routes) or (None, None, regex match, routes)
_FastEntry = tuple[
    "str | None",
    "str | None",
    "Callable[[str], re.Match[str] | None] | None",
    "dict[str, ResourceRoute]",
]


# A candidate list longer than this is narrowed through a _SegmentIndex rather
# than tried pattern after pattern (below it, trying them is as quick).
_INDEX_AT = 8


# A custom variable regex simple enough to judge: one character class (`\d`,
# `\w`, or a bracket class) repeated at least once.
_SIMPLE_VARIABLE = re.compile(r"(\\[dw]|\[[^\]\[]+\])(\+|\{[1-9][0-9]*(?:,[0-9]*)?\})?")


def _within_one_segment(pattern: str) -> bool:
    """Whether a variable's regex can only match a non-empty run of characters
    none of which is '/' (so the variable stays within one path segment)."""
    if pattern == _DEFAULT_SEGMENT:
        return True
    m = _SIMPLE_VARIABLE.fullmatch(pattern)
    if m is None:
        return False
    try:
        return re.fullmatch(m.group(1), "/") is None
    except re.error:
        return False


def _segment_shape(resource: AbstractResource) -> list[str | None] | None:
    """A pattern's path segments, literal (as the router's key spells them) or
    None for one holding a variable; None for the whole when a variable's regex
    might match '/' or nothing (or is too complex to tell), or for a prefix."""
    if not isinstance(resource, DynamicResource):
        return None
    shape: list[str | None] = []
    current = ""
    variable = False
    for part in resource._parts:
        if isinstance(part, tuple):
            if not _within_one_segment(part[1]):
                return None
            variable = True
            continue
        pieces = part.split("/")
        current += pieces[0]
        for piece in pieces[1:]:
            shape.append(None if variable else current.replace("%", "%25"))
            current, variable = piece, False
    shape.append(None if variable else current.replace("%", "%25"))
    return shape


class _Node:
    __slots__ = ("ends", "literal", "variable")

    def __init__(self) -> None:
        self.literal: dict[str, _Node] = {}
        self.variable: _Node | None = None
        self.ends: list[int] = []


class _SegmentIndex:
    """Narrows a long candidate list to the resources that can match a path,
    in registration order, at a cost that follows the path's depth rather than
    the number of routes.

    Patterns whose variables each stay within one non-empty segment (`{name}`,
    `{id:\\d+}`, `{x:[a-z]+}`) go into a trie of path segments: a literal segment
    is a dict key, a segment holding a variable is a wildcard edge. A lookup
    walks the path's segments down every edge that fits. Everything else
    (other regexes, prefixes) is always a candidate. It is only a filter: each candidate is
    still matched by its own regex, so order, 405s and values stay exactly as
    trying every resource in turn gives them.
    """

    __slots__ = ("_always", "_root")

    def __init__(self, resources: list[AbstractResource]) -> None:
        self._root = _Node()
        self._always: list[int] = []
        for i, resource in enumerate(resources):
            shape = _segment_shape(resource)
            if shape is None:
                self._always.append(i)
                continue
            node = self._root
            for segment in shape:
                if segment is None:
                    if node.variable is None:
                        node.variable = _Node()
                    node = node.variable
                else:
                    child = node.literal.get(segment)
                    if child is None:
                        child = node.literal[segment] = _Node()
                    node = child
            node.ends.append(i)

    def candidates(self, path: str) -> list[int]:
        """Indices of the resources that may match `path`, in order."""
        segments = path.split("/")
        depth_end = len(segments)
        found = list(self._always)
        stack = [(self._root, 0)]
        while stack:
            node, depth = stack.pop()
            if depth == depth_end:
                found += node.ends
                continue
            child = node.literal.get(segments[depth])
            if child is not None:
                stack.append((child, depth + 1))
            if node.variable is not None and segments[depth]:
                stack.append((node.variable, depth + 1))
        found.sort()
        return found


class UrlDispatcher(Mapping[str, AbstractResource]):
    """The router of an `Application` (`app.router`)."""

    def __init__(self) -> None:
        self._resources: list[AbstractResource] = []
        self._named: dict[str, AbstractResource] = {}
        self._plain: dict[str, PlainResource] = {}
        # first segment -> patterns/prefixes starting with it, in order
        self._buckets: dict[str, list[AbstractResource]] = {}
        # patterns whose first segment is itself a variable: tried for every path
        self._wild: list[AbstractResource] = []
        # first segment -> (regex match, routes) of the patterns at the head of
        # its bucket (up to the first resource that is not a DynamicResource)
        self._fast: dict[str, list[_FastEntry]] = {}
        # bucket (None: the wild list) -> its _SegmentIndex, made on first use
        self._indexes: dict[str | None, _SegmentIndex] = {}
        self._frozen = False

    # -- Mapping of names to resources --

    def __getitem__(self, name: str) -> AbstractResource:
        return self._named[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._named)

    def __len__(self) -> int:
        return len(self._named)

    def __contains__(self, name: object) -> bool:
        return name in self._named

    def named_resources(self) -> Mapping[str, AbstractResource]:
        return dict(self._named)

    def resources(self) -> list[AbstractResource]:
        return list(self._resources)

    def routes(self) -> list[ResourceRoute]:
        return [r for res in self._resources for r in res]

    # -- registration --

    def _check_frozen(self) -> None:
        if self._frozen:
            raise RuntimeError(
                "Cannot register a resource into frozen router: the application is "
                "already serving (add routes before it starts)"
            )

    def register_resource(self, resource: AbstractResource) -> None:
        self._check_frozen()
        name = resource.name
        if name is not None:
            if name in self._named:
                raise ValueError(f"Duplicate {name!r}, already handled by {self._named[name]!r}")
            self._named[name] = resource
        self._resources.append(resource)
        self._indexes.clear()
        if isinstance(resource, PlainResource):
            self._plain.setdefault(resource.key, resource)
        elif isinstance(resource, (DynamicResource, PrefixResource)):
            bucket = resource.bucket
            if bucket is None:
                self._wild.append(resource)
            else:
                members = self._buckets.setdefault(bucket, [])
                members.append(resource)
                if len(members) > _INDEX_AT:
                    self._fast.pop(bucket, None)  # a long bucket: _SegmentIndex instead
                elif all(type(r) is DynamicResource for r in members):
                    assert isinstance(resource, DynamicResource)
                    self._fast.setdefault(bucket, []).append(resource._fast_entry())
        else:
            self._wild.append(resource)

    def add_resource(self, path: str, *, name: str | None = None) -> AbstractResource:
        """The resource for `path`, made if needed (routes of one path share it)."""
        if path and not path.startswith("/"):
            raise ValueError("path should be started with / or be empty")
        path = path or "/"
        _, dynamic = parse_pattern(path)
        # Reuse the last resource if it is the same path (aiohttp does the same).
        if self._resources:
            last = self._resources[-1]
            if (
                isinstance(last, (PlainResource, DynamicResource))
                and last.canonical == path
                and (name is None or last.name == name)
            ):
                return last
        resource: AbstractResource
        resource = DynamicResource(path, name) if dynamic else PlainResource(path, name)
        self.register_resource(resource)
        return resource

    def add_route(
        self,
        method: str,
        path: str,
        handler: Any,
        *,
        name: str | None = None,
        expect_handler: Any = None,
    ) -> ResourceRoute:
        """Serve `method` requests for `path` with `handler` ('*' for any method)."""
        self._check_frozen()
        resource = self.add_resource(path, name=name)
        return resource.add_route(method, handler)

    def add_get(
        self, path: str, handler: Any, *, name: str | None = None, allow_head: bool = True
    ) -> ResourceRoute:
        """GET (and, unless `allow_head=False`, HEAD) for `path`."""
        resource = self.add_resource(path, name=name)
        if allow_head:
            resource.add_route("HEAD", handler)
        return resource.add_route("GET", handler)

    def add_head(self, path: str, handler: Any, **kwargs: Any) -> ResourceRoute:
        return self.add_route("HEAD", path, handler, **kwargs)

    def add_post(self, path: str, handler: Any, **kwargs: Any) -> ResourceRoute:
        return self.add_route("POST", path, handler, **kwargs)

    def add_put(self, path: str, handler: Any, **kwargs: Any) -> ResourceRoute:
        return self.add_route("PUT", path, handler, **kwargs)

    def add_patch(self, path: str, handler: Any, **kwargs: Any) -> ResourceRoute:
        return self.add_route("PATCH", path, handler, **kwargs)

    def add_delete(self, path: str, handler: Any, **kwargs: Any) -> ResourceRoute:
        return self.add_route("DELETE", path, handler, **kwargs)

    def add_view(self, path: str, handler: type[View], **kwargs: Any) -> ResourceRoute:
        """A class-based `View` for every method of `path`."""
        return self.add_route(METH_ANY, path, handler, **kwargs)

    def add_static(self, prefix: str, path: Any, **kwargs: Any) -> AbstractResource:
        """Serve the files under directory `path` at URLs under `prefix`."""
        from .files import StaticResource

        self._check_frozen()
        resource = StaticResource(prefix, path, **kwargs)
        self.register_resource(resource)
        return resource

    def add_routes(self, routes: Iterable[AbstractRouteDef]) -> list[ResourceRoute]:
        """Register what a `RouteTableDef` (or a list of `web.get(...)`...) holds."""
        registered = []
        for definition in routes:
            registered.extend(definition.register(self))
        return registered

    def freeze(self) -> None:
        self._frozen = True

    @property
    def frozen(self) -> bool:
        return self._frozen

    # -- resolution --

    def resolve(self, method: str, path: str) -> MatchInfo:
        """The route for `method` and `path` (the raw, still-encoded path).
        Raises HTTPNotFound, HTTPMethodNotAllowed or HTTPBadRequest."""
        key = decode_path(path, keep_slash=True) if "%" in path else path
        plain = self._plain.get(key)
        if plain is not None:
            routes = plain.routes
            route = routes.get(method) or routes.get(METH_ANY)
            if route is not None:
                info = MatchInfo()
                info.route = route
                info._apps = ()
                return info
        fast = self._fast.get(key[1:].partition("/")[0])
        if fast is not None and "%" not in key:
            # The bucket's leading patterns, without a method call per
            # candidate: (prefix, variable, None, routes) for the common
            # `/literal/prefix/{name}` shape, matched with string operations;
            # (None, None, regex match, routes) for the rest.
            for prefix, variable, regex_match, routes in fast:
                if prefix is not None:
                    if not key.startswith(prefix):
                        continue
                    tail = key[len(prefix) :]
                    if not tail or "/" in tail or "{" in tail or "}" in tail:
                        continue
                    values: dict[str, str] = {variable: tail}  # type: ignore[dict-item]
                else:
                    assert regex_match is not None
                    m = regex_match(key)
                    if m is None:
                        continue
                    values = m.groupdict()
                route = routes.get(method) or routes.get(METH_ANY)
                if route is None:
                    break
                info = MatchInfo(values)
                info.route = route
                info._apps = ()
                return info
        return self._resolve_slowly(method, key, plain)

    def _resolve_slowly(self, method: str, key: str, plain: PlainResource | None) -> MatchInfo:
        """Everything `resolve` does not do on its fast path: sub-applications,
        patterns with a variable first segment, 405 and 404."""
        allowed: set[str] = set(plain.routes) if plain is not None else set()
        first_segment = key[1:].partition("/")[0]
        bucket = self._buckets.get(first_segment)
        lists: tuple[tuple[str | None, list[AbstractResource]], ...] = (
            ((first_segment, bucket), (None, self._wild)) if bucket else ((None, self._wild),)
        )
        for index_key, candidates in lists:
            order: Iterable[int] = range(len(candidates))
            if len(candidates) > _INDEX_AT:
                index = self._indexes.get(index_key)
                if index is None:
                    index = self._indexes[index_key] = _SegmentIndex(candidates)
                order = index.candidates(key)
            for i in order:
                resource = candidates[i]
                values = resource.match(key)
                if values is None:
                    continue
                if isinstance(resource, SubAppResource):
                    return resource.resolve_sub(method, values["tail"] or "/", allowed)
                routes = resource.routes
                route = routes.get(method) or routes.get(METH_ANY)
                if route is not None:
                    return _match_info(values, route)
                allowed |= set(routes)
        if allowed:
            raise HTTPMethodNotAllowed(method, allowed)
        raise HTTPNotFound()


class SubAppMatchError(Exception):
    """Routing failed inside a sub-application: `error` (404, 405, 400) is to
    be answered through the middlewares of `apps` (outermost first)."""

    def __init__(self, error: HTTPException, apps: tuple[Application, ...]) -> None:
        super().__init__(error)
        self.error = error
        self.apps = apps


class SubAppResource(PrefixResource):
    """Routes every path under `prefix` into a sub-application's router."""

    def __init__(self, prefix: str, app: Application) -> None:
        super().__init__(prefix)
        self.app = app

    def resolve_sub(self, method: str, tail: str, allowed: set[str]) -> MatchInfo:
        try:
            match = self.app.router.resolve(method, tail)
        except HTTPException as exc:
            # The error belongs to the sub-application: its middlewares see it.
            raise SubAppMatchError(exc, (self.app,)) from None
        except SubAppMatchError as exc:
            exc.apps = (self.app, *exc.apps)
            raise
        match._apps = (self.app, *match._apps)
        return match

    def url_for(self, *args: str, **kwargs: str) -> URL:
        raise RuntimeError("url_for() is not supported for a sub-application resource")

    def __repr__(self) -> str:
        return f"<SubAppResource {self._prefix} -> {self.app!r}>"


# -- class-based views ---------------------------------------------------------------------


class View:
    """A class-based handler: define `async def get(self)`, `post`, ...;
    `self.request` is the request. Unknown methods get 405."""

    def __init__(self, request: Request) -> None:
        self.request = request

    def __await__(self) -> Generator[Any, None, StreamResponse]:
        return self._dispatch().__await__()

    async def _dispatch(self) -> StreamResponse:
        method = self.request.method.lower()
        handler = getattr(self, method, None) if method in _VIEW_METHODS else None
        if handler is None:
            allowed = {m.upper() for m in _VIEW_METHODS if hasattr(self, m)}
            raise HTTPMethodNotAllowed(self.request.method, allowed)
        return await handler()  # type: ignore[no-any-return]


_VIEW_METHODS = ("get", "head", "post", "put", "patch", "delete", "options")


# -- route tables ----------------------------------------------------------------------------


class AbstractRouteDef:
    """Something `add_routes()` can register."""

    def register(self, router: UrlDispatcher) -> list[ResourceRoute]:
        raise NotImplementedError


class RouteDef(AbstractRouteDef):
    """A route waiting to be registered: method, path, handler, options."""

    def __init__(self, method: str, path: str, handler: Any, kwargs: dict[str, Any]) -> None:
        self.method = method
        self.path = path
        self.handler = handler
        self.kwargs = kwargs

    def register(self, router: UrlDispatcher) -> list[ResourceRoute]:
        if self.method == "GET":
            return [router.add_get(self.path, self.handler, **self.kwargs)]
        return [router.add_route(self.method, self.path, self.handler, **self.kwargs)]

    def __repr__(self) -> str:
        return f"<RouteDef {self.method} {self.path} -> {self.handler!r}>"


class StaticDef(AbstractRouteDef):
    """A static directory waiting to be registered."""

    def __init__(self, prefix: str, path: Any, kwargs: dict[str, Any]) -> None:
        self.prefix = prefix
        self.path = path
        self.kwargs = kwargs

    def register(self, router: UrlDispatcher) -> list[ResourceRoute]:
        resource = router.add_static(self.prefix, self.path, **self.kwargs)
        return list(resource)


def route(method: str, path: str, handler: Any, **kwargs: Any) -> RouteDef:
    return RouteDef(method.upper(), path, handler, kwargs)


def head(path: str, handler: Any, **kwargs: Any) -> RouteDef:
    return route("HEAD", path, handler, **kwargs)


def get(
    path: str, handler: Any, *, name: str | None = None, allow_head: bool = True, **kwargs: Any
) -> RouteDef:
    return route("GET", path, handler, name=name, allow_head=allow_head, **kwargs)


def post(path: str, handler: Any, **kwargs: Any) -> RouteDef:
    return route("POST", path, handler, **kwargs)


def put(path: str, handler: Any, **kwargs: Any) -> RouteDef:
    return route("PUT", path, handler, **kwargs)


def patch(path: str, handler: Any, **kwargs: Any) -> RouteDef:
    return route("PATCH", path, handler, **kwargs)


def delete(path: str, handler: Any, **kwargs: Any) -> RouteDef:
    return route("DELETE", path, handler, **kwargs)


def view(path: str, handler: type[View], **kwargs: Any) -> RouteDef:
    return route(METH_ANY, path, handler, **kwargs)


def static(prefix: str, path: Any, **kwargs: Any) -> StaticDef:
    return StaticDef(prefix, path, kwargs)


class RouteTableDef(list[AbstractRouteDef]):
    """Collect routes with decorators, then `app.add_routes(routes)`::

    routes = web.RouteTableDef()

    @routes.get("/hello/{name}")
    async def hello(request): ...
    """

    def route(self, method: str, path: str, **kwargs: Any) -> Callable[[Any], Any]:
        def inner(handler: Any) -> Any:
            self.append(RouteDef(method.upper(), path, handler, kwargs))
            return handler

        return inner

    def head(self, path: str, **kwargs: Any) -> Callable[[Any], Any]:
        return self.route("HEAD", path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> Callable[[Any], Any]:
        return self.route("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Callable[[Any], Any]:
        return self.route("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> Callable[[Any], Any]:
        return self.route("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> Callable[[Any], Any]:
        return self.route("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Callable[[Any], Any]:
        return self.route("DELETE", path, **kwargs)

    def options(self, path: str, **kwargs: Any) -> Callable[[Any], Any]:
        return self.route("OPTIONS", path, **kwargs)

    def view(self, path: str, **kwargs: Any) -> Callable[[Any], Any]:
        return self.route(METH_ANY, path, **kwargs)

    def static(self, prefix: str, path: Any, **kwargs: Any) -> None:
        self.append(StaticDef(prefix, path, kwargs))
