"""Who the client is behind a proxy: forwarding headers and the PROXY protocol. Sans-IO.

A server behind nginx, HAProxy or a cloud balancer sees the proxy's address,
not the client's. Proxies say who the client was in `Forwarded` (RFC 7239),
`X-Forwarded-For`/`-Proto`/`-Host`, or before the request in the PROXY
protocol (HAProxy's, v1 text or v2 binary). Anybody can send those headers,
so they count only from a peer the operator names as a proxy
(`TrustedProxies`: addresses and networks, `*` for any); from anyone else
they are ignored. None is trusted by default.

`resolve()` reads the headers of one request:

- **`Forwarded` wins** when present. Its elements are hops, the nearest
  last; walking from the right, hops whose `for` is itself a trusted proxy
  are skipped, and the first that is not is the client. Its `proto` and
  `host` are what the client used (recorded by the proxy that received its
  request).
- Otherwise **`X-Forwarded-For`** the same way: the right-most address that
  is not a trusted proxy. `X-Forwarded-Proto` and `X-Forwarded-Host` give
  the scheme and host: the entry at the client's position when they list
  as many entries as `X-Forwarded-For`, else the right-most (set by the
  nearest proxy).
- Anything malformed (a `for` that is not an address, a proto other than
  http/https/ws/wss, a host that is not `host[:port]`, an unbalanced quote)
  is ignored, never an error: the request is answered as if the header
  were not there.

`read_proxy_header()` reads a PROXY protocol header (v1 or v2) at the start
of a connection. Unlike the headers, that protocol must be well-formed by
its spec: a malformed header raises `ValueError` and the connection closes.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import Final

from .headers import Headers

__all__ = [
    "Forwarded",
    "ProxyHeader",
    "TrustedProxies",
    "read_proxy_header",
    "resolve",
]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    """The peers whose forwarding information is believed: IP addresses and
    networks (`"10.0.0.0/8"`, `"::1"`), or `"*"` for any peer. Parsed once;
    a bad entry raises `ValueError` naming it."""

    __slots__ = ("_any", "_hosts", "_networks")

    def __init__(self, entries: str | Iterable[str]) -> None:
        if isinstance(entries, str):
            entries = entries.split(",")
        self._any = False
        self._hosts: set[str] = set()
        self._networks: list[_Network] = []
        for raw in entries:
            entry = raw.strip()
            if not entry:
                continue
            if entry == "*":
                self._any = True
            elif "/" in entry:
                try:
                    self._networks.append(ipaddress.ip_network(entry, strict=False))
                except ValueError:
                    raise ValueError(f"not an IP network: {entry!r}") from None
            else:
                try:
                    self._hosts.add(str(ipaddress.ip_address(entry)))
                except ValueError:
                    raise ValueError(f"not an IP address: {entry!r}") from None

    def __contains__(self, address: object) -> bool:
        if self._any:
            return True
        if not isinstance(address, str):
            return False
        if address in self._hosts:
            return True
        if not self._networks:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self._networks)

    def __bool__(self) -> bool:
        return self._any or bool(self._hosts) or bool(self._networks)

    def __repr__(self) -> str:
        parts = ["*"] if self._any else []
        parts += sorted(self._hosts) + [str(n) for n in self._networks]
        return f"TrustedProxies({', '.join(parts)!r})"


class Forwarded:
    """What the proxies say about a request: the client's address (and port,
    if said), the scheme and the host it used; None for what was not said
    (or not believable)."""

    __slots__ = ("client", "host", "port", "scheme")

    def __init__(
        self,
        client: str | None = None,
        port: int | None = None,
        scheme: str | None = None,
        host: str | None = None,
    ) -> None:
        self.client = client
        self.port = port
        self.scheme = scheme
        self.host = host

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Forwarded):
            return NotImplemented
        return (self.client, self.port, self.scheme, self.host) == (
            other.client,
            other.port,
            other.scheme,
            other.host,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"Forwarded(client={self.client!r}, port={self.port!r}, "
            f"scheme={self.scheme!r}, host={self.host!r})"
        )


_SCHEMES: Final = frozenset(("http", "https", "ws", "wss"))
_HOST: Final = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[-A-Za-z0-9._~%!$&'()*+,;=]+)(?::[0-9]{1,5})?")
_TOKEN: Final = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_PAIR: Final = re.compile(rf'[ \t]*({_TOKEN})=({_TOKEN}|"(?:[^"\\]|\\.)*")[ \t]*')


def _address(node: str) -> tuple[str, int | None] | None:
    """An RFC 7239 node (`192.0.2.1`, `"[2001:db8::1]:4711"`, `_hidden`,
    `unknown`) as an IP address and port, or None if it names no address."""
    port: int | None = None
    if node.startswith("["):
        end = node.find("]")
        if end < 0:
            return None
        host, rest = node[1:end], node[end + 1 :]
        if rest:
            if not rest.startswith(":") or not rest[1:].isdigit():
                return None
            port = int(rest[1:])
    elif node.count(":") == 1:  # IPv4 with a port
        host, _, text = node.partition(":")
        if not text.isdigit():
            return None
        port = int(text)
    else:
        host = node
    try:
        return str(ipaddress.ip_address(host)), port if port is None or port <= 65535 else None
    except ValueError:
        return None


def _forwarded_elements(values: list[str]) -> list[dict[str, str]] | None:
    """The elements of `Forwarded` fields (RFC 7239 4), each a dict of
    lower-cased parameter names to unquoted values; None if malformed."""
    elements: list[dict[str, str]] = []
    for value in values:
        for part in _split_outside_quotes(value, ","):
            element: dict[str, str] = {}
            for pair in _split_outside_quotes(part, ";"):
                if not pair.strip():
                    continue
                match = _PAIR.fullmatch(pair)
                if match is None:
                    return None
                name, raw = match.group(1).lower(), match.group(2)
                if raw.startswith('"'):
                    raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
                if name in element:
                    return None  # a parameter twice in one element: malformed
                element[name] = raw
            if element:
                elements.append(element)
    return elements


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    start = 0
    quoted = False
    escaped = False
    for i, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _listed(values: list[str]) -> list[str]:
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


def resolve(peer: str, headers: Headers, trusted: TrustedProxies) -> Forwarded | None:
    """The forwarding information of a request from `peer`, or None when the
    peer is not a trusted proxy or the headers say nothing believable."""
    if peer not in trusted:
        return None
    values = headers.getall("forwarded")
    if values:
        return _from_forwarded(values, trusted)
    hops = _listed(headers.getall("x-forwarded-for"))
    if not hops:
        return None
    addresses = [_address(hop) for hop in hops]
    if any(a is None for a in addresses):
        return None  # one malformed hop and the chain cannot be read
    index = len(hops) - 1
    while index > 0 and addresses[index][0] in trusted:  # type: ignore[index]
        index -= 1
    client, port = addresses[index]  # type: ignore[misc]
    result = Forwarded(client, port)
    protos = _listed(headers.getall("x-forwarded-proto"))
    if protos:
        proto = (protos[index] if len(protos) == len(hops) else protos[-1]).lower()
        if proto in _SCHEMES:
            result.scheme = proto
    hosts = _listed(headers.getall("x-forwarded-host"))
    if hosts:
        host = hosts[index] if len(hosts) == len(hops) else hosts[-1]
        if _HOST.fullmatch(host):
            result.host = host
    return result


def _from_forwarded(values: list[str], trusted: TrustedProxies) -> Forwarded | None:
    elements = _forwarded_elements(values)
    if not elements:
        return None
    index = len(elements) - 1
    while True:
        node = elements[index].get("for")
        found = _address(node) if node is not None else None
        if index == 0 or found is None or found[0] not in trusted:
            break
        index -= 1
    element = elements[index]
    result = Forwarded()
    node = element.get("for")
    if node is not None:
        found = _address(node)
        if found is not None:
            result.client, result.port = found
    proto = element.get("proto", "").lower()
    if proto in _SCHEMES:
        result.scheme = proto
    host = element.get("host")
    if host is not None and _HOST.fullmatch(host):
        result.host = host
    if result.client is None and result.scheme is None and result.host is None:
        return None
    return result


# -- the PROXY protocol ---------------------------------------------------------------------

_V2_SIGNATURE: Final = b"\r\n\r\n\x00\r\nQUIT\n"
_V1_MAX: Final = 107  # the spec's bound on a v1 line, CRLF included


class ProxyHeader:
    """A PROXY protocol header: the client's address and port (None for a
    LOCAL or UNKNOWN connection, which is the proxy's own, a health check)."""

    __slots__ = ("client", "port")

    def __init__(self, client: str | None, port: int | None) -> None:
        self.client = client
        self.port = port

    def __repr__(self) -> str:
        return f"ProxyHeader(client={self.client!r}, port={self.port!r})"


def read_proxy_header(buf: bytes) -> tuple[ProxyHeader, int] | None:
    """The PROXY header at the start of `buf` and its length in bytes, or
    None if more bytes are needed. Raises `ValueError` if `buf` does not
    start with a well-formed v1 or v2 header."""
    if buf.startswith(b"PROXY "):
        return _read_v1(buf)
    if buf[:12] == _V2_SIGNATURE:
        return _read_v2(buf)
    if _V2_SIGNATURE.startswith(buf[:12]) or b"PROXY ".startswith(buf[:6]):
        return None  # a prefix of one of them: wait for more
    raise ValueError("the connection does not start with a PROXY protocol header")


def _read_v1(buf: bytes) -> tuple[ProxyHeader, int] | None:
    end = buf.find(b"\r\n", 0, _V1_MAX)
    if end < 0:
        if len(buf) >= _V1_MAX:
            raise ValueError("PROXY v1 line too long")
        return None
    try:
        fields = buf[:end].decode("ascii").split(" ")
    except UnicodeDecodeError:
        raise ValueError("PROXY v1 line is not ASCII") from None
    if len(fields) >= 2 and fields[1] == "UNKNOWN":
        return ProxyHeader(None, None), end + 2
    if len(fields) != 6 or fields[1] not in ("TCP4", "TCP6"):
        raise ValueError(f"malformed PROXY v1 line {buf[:end]!r}")
    _, family, source, _dest, sport, dport = fields
    try:
        ip = ipaddress.ip_address(source)
        ipaddress.ip_address(_dest)
    except ValueError:
        raise ValueError(f"bad address in PROXY v1 line {buf[:end]!r}") from None
    if (family == "TCP4") != (ip.version == 4):
        raise ValueError(f"address family mismatch in PROXY v1 line {buf[:end]!r}")
    for port in (sport, dport):
        leading_zero = port != "0" and port[:1] == "0"
        if not port.isdigit() or len(port) > 5 or int(port) > 65535 or leading_zero:
            raise ValueError(f"bad port in PROXY v1 line {buf[:end]!r}")
    return ProxyHeader(str(ip), int(sport)), end + 2


def _read_v2(buf: bytes) -> tuple[ProxyHeader, int] | None:
    if len(buf) < 16:
        return None
    version_command, family, length = buf[12], buf[13], int.from_bytes(buf[14:16], "big")
    if version_command >> 4 != 2 or version_command & 0x0F not in (0, 1):
        raise ValueError(f"bad PROXY v2 version/command byte {version_command:#x}")
    total = 16 + length
    if len(buf) < total:
        return None
    body = buf[16:total]
    if version_command & 0x0F == 0:  # LOCAL: the proxy's own connection
        return ProxyHeader(None, None), total
    transport = family & 0x0F
    address_family = family >> 4
    if transport not in (1, 2) or address_family not in (0, 1, 2, 3):
        raise ValueError(f"bad PROXY v2 family byte {family:#x}")
    if address_family == 1:  # IPv4
        if length < 12:
            raise ValueError("PROXY v2 IPv4 addresses cut short")
        return ProxyHeader(
            str(ipaddress.IPv4Address(body[:4])), int.from_bytes(body[8:10], "big")
        ), total
    if address_family == 2:  # IPv6
        if length < 36:
            raise ValueError("PROXY v2 IPv6 addresses cut short")
        return ProxyHeader(
            str(ipaddress.IPv6Address(body[:16])), int.from_bytes(body[32:34], "big")
        ), total
    return ProxyHeader(None, None), total  # UNSPEC or a Unix socket: no IP to report
