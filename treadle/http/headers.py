"""A case-insensitive, ordered multi-dict of header fields that keeps the raw bytes.

The parser hands over fields exactly as they came off the wire: the name in its
original case, the value as bytes with the surrounding whitespace removed. They
are stored as `(lower_name, name, value)` byte triples in arrival order, so
duplicates are kept, order is kept, and nothing is decoded until somebody asks.
Decoding every header to `str` up front is a measured per-request cost; most
handlers look at two or three fields, so `Headers` decodes lazily, field by
field, as latin-1 (the only decoding that cannot fail and loses nothing, which is
what RFC 9110 section 5.5 leaves a recipient for obs-text).

Lookups take `str` or `bytes` names in any case. `[]` and `get` give the first value of a name;
`getall` gives every value; `items()` gives every field decoded; `raw` gives the
original byte pairs. It is deliberately not a `Mapping`: a mapping's `items()`
cannot show duplicates, and hiding a duplicate header is how smuggling starts.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import overload

__all__ = ["Headers", "split_list"]

_Field = tuple[bytes, bytes, bytes]


def split_list(value: bytes) -> list[bytes]:
    """The lower-cased members of a comma-separated list field (`Connection`,
    `Upgrade`, `Transfer-Encoding`...), empty ones dropped (RFC 9110 5.6.1
    asks recipients to ignore empty list elements). One implementation for
    every list field the server and the WebSocket handshake read."""
    value = value.lower()
    if b"," not in value:  # the common case: one member
        return [value] if value else []
    return [item for item in (part.strip(b" \t") for part in value.split(b",")) if item]


def _key(name: str | bytes) -> bytes:
    if isinstance(name, str):
        # Header names are tokens (ASCII); a name with other characters can never
        # match a parsed field, and latin-1 never fails, so no error is needed.
        return name.lower().encode("latin-1")
    return name.lower()


class Headers:
    """Header fields of one message, in order, case-insensitive, duplicates kept.

    `len()` counts fields (so duplicates count twice) and iteration yields each
    field's name once per field, in order, as a multi-dict does.
    """

    __slots__ = ("_fields",)

    def __init__(self, fields: Iterable[tuple[bytes, bytes]] = ()) -> None:
        """Build from `(name, value)` byte pairs, e.g. `[(b"Host", b"example.com")]`."""
        self._fields: list[_Field] = [(n.lower(), n, v) for n, v in fields]

    # -- dict-like access ------------------------------------------------------

    def __getitem__(self, name: str | bytes) -> str:
        """The first value of `name`, decoded; KeyError if there is none."""
        key = _key(name)
        for lname, _, value in self._fields:
            if lname == key:
                return value.decode("latin-1")
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, (str, bytes)):
            return False
        key = _key(name)
        return any(lname == key for lname, _, _ in self._fields)

    def __iter__(self) -> Iterator[str]:
        return (name.decode("latin-1") for _, name, _ in self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def keys(self) -> list[str]:
        """Each field's name, decoded, once per field, in order."""
        return [name.decode("latin-1") for _, name, _ in self._fields]

    def values(self) -> list[str]:
        """Each field's value, decoded, in order."""
        return [value.decode("latin-1") for _, _, value in self._fields]

    @overload
    def get(self, name: str | bytes) -> str | None: ...
    @overload
    def get(self, name: str | bytes, default: str) -> str: ...
    @overload
    def get(self, name: str | bytes, default: None) -> str | None: ...

    def get(self, name: str | bytes, default: str | None = None) -> str | None:
        """The first value of `name`, decoded, or `default`."""
        key = _key(name)
        for lname, _, value in self._fields:
            if lname == key:
                return value.decode("latin-1")
        return default

    # -- multi-dict and raw access --------------------------------------------

    def getall(self, name: str | bytes) -> list[str]:
        """Every value of `name`, decoded, in order (empty if there is none)."""
        key = _key(name)
        return [v.decode("latin-1") for lname, _, v in self._fields if lname == key]

    def get_raw(self, name: str | bytes) -> bytes | None:
        """The first value of `name` as the bytes received, or None."""
        key = _key(name)
        for lname, _, value in self._fields:
            if lname == key:
                return value
        return None

    def getall_raw(self, name: str | bytes) -> list[bytes]:
        """Every value of `name` as the bytes received, in order."""
        key = _key(name)
        return [v for lname, _, v in self._fields if lname == key]

    @property
    def raw(self) -> list[tuple[bytes, bytes]]:
        """All fields as `(name, value)` byte pairs, names in their original case."""
        return [(name, value) for _, name, value in self._fields]

    def items(self) -> list[tuple[str, str]]:
        """All fields as `(name, value)` str pairs, duplicates kept, in order."""
        return [(n.decode("latin-1"), v.decode("latin-1")) for _, n, v in self._fields]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return self.raw == other.raw
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Headers({self.raw!r})"
