"""Jute primitives (ZooKeeper's BinaryInput/OutputArchive): big-endian, length-prefixed."""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")
# Aliases: the archive methods are named after the jute types, shadowing the builtins.
Int = int
Bool = bool

_INT = struct.Struct(">i")
_LONG = struct.Struct(">q")


class JuteError(ValueError):
    """Malformed or truncated jute input."""


class Reader:
    """Reads jute primitives from a buffer, checking bounds on every read."""

    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes, pos: Int = 0) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data)

    @property
    def remaining(self) -> Int:
        return self.end - self.pos

    def int(self) -> Int:
        pos = self.pos
        if pos + 4 > self.end:
            raise JuteError("truncated int")
        self.pos = pos + 4
        value: Int = _INT.unpack_from(self.data, pos)[0]
        return value

    def long(self) -> Int:
        pos = self.pos
        if pos + 8 > self.end:
            raise JuteError("truncated long")
        self.pos = pos + 8
        value: Int = _LONG.unpack_from(self.data, pos)[0]
        return value

    def bool(self) -> Bool:
        pos = self.pos
        if pos >= self.end:
            raise JuteError("truncated boolean")
        self.pos = pos + 1
        return self.data[pos] != 0

    def buffer(self) -> bytes | None:
        n = self.int()
        if n == -1:
            return None
        if n < 0 or n > self.end - self.pos:
            raise JuteError(f"bad buffer length {n}")
        start = self.pos
        self.pos = start + n
        return bytes(self.data[start : start + n])

    def ustring(self) -> str | None:
        raw = self.buffer()
        if raw is None:
            return None
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JuteError(f"invalid UTF-8 string: {exc}") from None

    def path(self) -> str:
        """A ustring that must not be null (request paths). Malformed UTF-8 becomes U+FFFD,
        as Java's decoder does on ZooKeeper servers (the path is then simply invalid)."""
        raw = self.buffer()
        if raw is None:
            raise JuteError("null path")
        return raw.decode("utf-8", "replace")

    def vector(self, read_item: Callable[[Reader], T]) -> list[T] | None:
        n = self.int()
        if n == -1:
            return None
        if n < 0 or n > self.end - self.pos:  # every element takes at least one byte
            raise JuteError(f"bad vector length {n}")
        return [read_item(self) for _ in range(n)]


class Writer:
    """Builds a jute byte string."""

    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def int(self, value: Int) -> None:
        self.parts.append(_INT.pack(value))

    def long(self, value: Int) -> None:
        self.parts.append(_LONG.pack(value))

    def bool(self, value: Bool) -> None:
        self.parts.append(b"\x01" if value else b"\x00")

    def buffer(self, value: bytes | None) -> None:
        if value is None:
            self.parts.append(b"\xff\xff\xff\xff")
        else:
            self.parts.append(_INT.pack(len(value)))
            self.parts.append(value)

    def ustring(self, value: str | None) -> None:
        self.buffer(None if value is None else value.encode("utf-8"))

    def vector(self, items: Sequence[T] | None, write_item: Callable[[Writer, T], None]) -> None:
        if items is None:
            self.int(-1)
            return
        self.int(len(items))
        for item in items:
            write_item(self, item)

    def raw(self, data: bytes) -> None:
        self.parts.append(data)

    def getvalue(self) -> bytes:
        return b"".join(self.parts)
