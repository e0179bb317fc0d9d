"""Multi-dicts for the web layer: query strings, form data, response headers.

`MultiDict` keeps every value of a repeated key, in order (`?tag=a&tag=b`);
`CIMultiDict` does the same with case-insensitive keys, for response headers.
Both are small list-backed classes: the collections they hold are short, and a
list of pairs is cheaper to build per request than a dict of lists.

`[key]` and `get()` give the first value; `getall()` every value; `add()`
appends; `[key] = value` replaces every value of the key with one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import Any, Generic, TypeVar, overload

__all__ = ["CIMultiDict", "MultiDict", "MultiDictProxy"]

V = TypeVar("V")
D = TypeVar("D")


class MultiDict(MutableMapping[str, V], Generic[V]):
    """An ordered dict that keeps several values per key."""

    __slots__ = ("_items",)

    def __init__(
        self, data: Mapping[str, V] | Iterable[tuple[str, V]] | None = None, /, **kwargs: V
    ) -> None:
        self._items: list[tuple[str, str, V]] = []
        if data is not None:
            self.extend(data)
        if kwargs:
            self.extend(kwargs)

    @staticmethod
    def _key(key: str) -> str:
        return key

    def extend(self, data: Mapping[str, V] | Iterable[tuple[str, V]]) -> None:
        """Add every pair of `data` (a mapping, a multi-dict or pairs)."""
        pairs: Iterable[tuple[str, V]] = data.items() if isinstance(data, Mapping) else data
        key = self._key
        self._items.extend((key(k), k, v) for k, v in pairs)

    def add(self, key: str, value: V) -> None:
        """Append a value for `key`, keeping the ones already there."""
        self._items.append((self._key(key), key, value))

    def __getitem__(self, key: str) -> V:
        k = self._key(key)
        for ik, _, v in self._items:
            if ik == k:
                return v
        raise KeyError(key)

    @overload
    def getone(self, key: str) -> V: ...
    @overload
    def getone(self, key: str, default: D) -> V | D: ...
    def getone(self, key: str, default: Any = ...) -> Any:
        """The first value of `key`; KeyError (or `default`) if none."""
        try:
            return self[key]
        except KeyError:
            if default is ...:
                raise
            return default

    def getall(self, key: str, default: Any = ...) -> list[V]:
        """Every value of `key`, in order; KeyError (or `default`) if none."""
        k = self._key(key)
        found = [v for ik, _, v in self._items if ik == k]
        if not found:
            if default is ...:
                raise KeyError(key)
            return default  # type: ignore[no-any-return]
        return found

    def __setitem__(self, key: str, value: V) -> None:
        k = self._key(key)
        items = self._items
        for i, (ik, _, _) in enumerate(items):
            if ik == k:
                items[i] = (k, key, value)
                # Drop the other values of the key, keep the first position.
                self._items = items[: i + 1] + [t for t in items[i + 1 :] if t[0] != k]
                return
        items.append((k, key, value))

    def __delitem__(self, key: str) -> None:
        k = self._key(key)
        kept = [t for t in self._items if t[0] != k]
        if len(kept) == len(self._items):
            raise KeyError(key)
        self._items = kept

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        k = self._key(key)
        return any(ik == k for ik, _, _ in self._items)

    def __iter__(self) -> Iterator[str]:
        return (key for _, key, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> list[tuple[str, V]]:  # type: ignore[override]
        """Every (key, value) pair, repeated keys included, in order."""
        return [(key, v) for _, key, v in self._items]

    def keys(self) -> list[str]:  # type: ignore[override]
        return [key for _, key, _ in self._items]

    def values(self) -> list[V]:  # type: ignore[override]
        return [v for _, _, v in self._items]

    def copy(self) -> MultiDict[V]:
        new = type(self)()
        new._items = list(self._items)
        return new

    def __eq__(self, other: object) -> bool:
        if isinstance(other, MultiDict):
            return self.items() == other.items()
        if isinstance(other, Mapping):
            return dict(self.items()) == dict(other.items()) and len(self) == len(other)
        return NotImplemented

    def __repr__(self) -> str:
        body = ", ".join(f"{k!r}: {v!r}" for k, v in self.items())
        return f"<{type(self).__name__}({body})>"


class CIMultiDict(MultiDict[V]):
    """A `MultiDict` whose keys compare case-insensitively (header names)."""

    __slots__ = ()

    @staticmethod
    def _key(key: str) -> str:
        return key.lower()


class MultiDictProxy(Mapping[str, V], Generic[V]):
    """A read-only view of a `MultiDict` (what `request.query` and
    `await request.post()` give)."""

    __slots__ = ("_md",)

    def __init__(self, md: MultiDict[V]) -> None:
        self._md = md

    def __getitem__(self, key: str) -> V:
        return self._md[key]

    def getone(self, key: str, default: Any = ...) -> Any:
        return self._md.getone(key, default)

    def getall(self, key: str, default: Any = ...) -> list[V]:
        return self._md.getall(key, default)

    def get(self, key: str, default: Any = None) -> Any:
        return self._md.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._md

    def __iter__(self) -> Iterator[str]:
        return iter(self._md)

    def __len__(self) -> int:
        return len(self._md)

    def items(self) -> list[tuple[str, V]]:  # type: ignore[override]
        return self._md.items()

    def keys(self) -> list[str]:  # type: ignore[override]
        return self._md.keys()

    def values(self) -> list[V]:  # type: ignore[override]
        return self._md.values()

    def copy(self) -> MultiDict[V]:
        return self._md.copy()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, MultiDictProxy):
            return self._md == other._md
        return self._md == other

    def __repr__(self) -> str:
        body = ", ".join(f"{k!r}: {v!r}" for k, v in self.items())
        return f"<{type(self).__name__}({body})>"
