"""Declarative jute records: field types are declared once, read/write are generated.

A record is an attrs class deriving from `JuteRecord` whose fields are annotated with the
jute aliases below (`Path`, `Buffer`, `Int32`, ...), with `Vector(item)`, or with another
record class. `@jute_record` reads those annotations (in field order, which is wire order)
and compiles a specialised `read`/`write` pair for the class, so the hot path runs
straight-line code equivalent to a hand-written one:

    @jute_record
    @attrs.frozen(slots=True)
    class SetDataRequest(JuteRecord):
        path: Path
        data: Buffer
        version: Int32

Runs of two or more fixed-size fields (int, long, boolean) are read and written with one
precompiled `struct`, so Stat (eleven of them) stays a single unpack/pack.

Null handling follows the alias: `Buffer`/`OptString` keep null (None) apart from empty,
`Bytes`/`String`/vectors read null as empty, `Path` refuses null, and every writer writes
None as null (-1).
"""

from __future__ import annotations

import struct
import sys
import typing
from collections.abc import Callable
from typing import Annotated, Any, Self, TypeAlias, TypeVar

import attrs

from controller.zk.jute import JuteError, Reader, Writer


class Kind:
    """A jute field type: how to read it (an expression on `r`) and write it (a statement on
    `w` and the value `{v}`). `fmt` is its struct code when fixed-size."""

    __slots__ = ("fmt", "name", "read_expr", "write_stmt")

    def __init__(self, name: str, read_expr: str, write_stmt: str, fmt: str = "") -> None:
        self.name = name
        self.read_expr = read_expr
        self.write_stmt = write_stmt
        self.fmt = fmt

    def __repr__(self) -> str:
        return self.name


INT = Kind("int", "r.int()", "w.int({v})", "i")
LONG = Kind("long", "r.long()", "w.long({v})", "q")
BOOL = Kind("boolean", "r.bool()", "w.bool({v})", "?")
BUFFER = Kind("buffer", "r.buffer()", "w.buffer({v})")  # null stays None
BYTES = Kind("buffer (null read as b'')", 'r.buffer() or b""', "w.buffer({v})")
USTRING = Kind("ustring (null read as '')", 'r.ustring() or ""', "w.ustring({v})")
OPT_USTRING = Kind("ustring", "r.ustring()", "w.ustring({v})")  # null stays None
PATH = Kind("path", "r.path()", "w.ustring({v})")  # null refused, bad UTF-8 replaced
# An optional trailing boolean (ConnectRequest/Response.readOnly): absent when the body ends.
TRAILING_BOOL = Kind(
    "trailing boolean", "r.bool() if r.remaining >= 1 else None", "if {v} is not None: w.bool({v})"
)


class Vector:
    """A jute vector of a primitive kind or a record class; null is read as []."""

    __slots__ = ("item",)

    def __init__(self, item: Kind | type[JuteRecord]) -> None:
        self.item = item

    def __repr__(self) -> str:
        item = self.item
        return f"vector<{item.name if isinstance(item, Kind) else item.__name__}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vector) and other.item is self.item

    def __hash__(self) -> int:
        return hash(("vector", id(self.item)))


# Field annotations. They are the plain Python types to type checkers and attrs.
Int32: TypeAlias = Annotated[int, INT]
Int64: TypeAlias = Annotated[int, LONG]
Bool: TypeAlias = Annotated[bool, BOOL]
Buffer: TypeAlias = Annotated[bytes | None, BUFFER]
Bytes: TypeAlias = Annotated[bytes, BYTES]
String: TypeAlias = Annotated[str, USTRING]
OptString: TypeAlias = Annotated[str | None, OPT_USTRING]
Path: TypeAlias = Annotated[str, PATH]
TrailingBool: TypeAlias = Annotated[bool | None, TRAILING_BOOL]
Strings: TypeAlias = Annotated[list[str], Vector(USTRING)]

FieldType = Kind | Vector | type["JuteRecord"]


@attrs.frozen
class Field:
    """One declared field of a record."""

    name: str
    type: FieldType


class JuteRecord:
    """Base of jute records; `@jute_record` replaces `read`/`write` with generated code."""

    __slots__ = ()

    @classmethod
    def read(cls, r: Reader) -> Self:
        raise NotImplementedError(f"{cls.__name__} is not a @jute_record")

    def write(self, w: Writer) -> None:
        raise NotImplementedError(f"{type(self).__name__} is not a @jute_record")


R = TypeVar("R", bound=JuteRecord)

SCHEMAS: dict[type[JuteRecord], tuple[Field, ...]] = {}
"""Every declared record class and its fields in wire order."""

SOURCES: dict[type[JuteRecord], str] = {}
"""The generated source of each declared record's read/write (for inspection)."""


def fields_of(cls: type[JuteRecord]) -> tuple[Field, ...]:
    return SCHEMAS[cls]


def _field_type(owner: type, name: str, hint: Any) -> FieldType:
    if isinstance(hint, type) and issubclass(hint, JuteRecord):
        return hint
    for meta in getattr(hint, "__metadata__", ()):
        if isinstance(meta, Kind | Vector):
            return meta
    raise TypeError(f"{owner.__name__}.{name}: no jute type in annotation {hint!r}")


def _write_record_item(w: Writer, item: JuteRecord) -> None:
    item.write(w)


class _Gen:
    """Builds the source of one record's read and write functions."""

    def __init__(self, cls: type[JuteRecord]) -> None:
        self.cls = cls
        self.ns: dict[str, Any] = {"JuteError": JuteError, "cls": cls}
        self._n = 0

    def const(self, value: Any) -> str:
        name = f"_c{self._n}"
        self._n += 1
        self.ns[name] = value
        return name

    def item_functions(self, vec: Vector) -> tuple[str, str]:
        item = vec.item
        if isinstance(item, Kind):
            src = (
                f"def _ri(r):\n    return {item.read_expr}\n"
                f"def _wi(w, v):\n    {item.write_stmt.format(v='v')}\n"
            )
            ns: dict[str, Any] = {}
            exec(src, ns)  # code generated from the fixed Kind table above
            return self.const(ns["_ri"]), self.const(ns["_wi"])
        return self.const(item.read), self.const(_write_record_item)

    def build(self, fields: tuple[Field, ...]) -> str:
        read = ["def read(cls, r):"]
        write = ["def write(self, w):"]
        args: list[str] = []
        i = 0
        while i < len(fields):
            run = i
            while run < len(fields) and isinstance(t := fields[run].type, Kind) and t.fmt:
                run += 1
            if run - i >= 2:  # a run of fixed-size fields: one struct
                group = fields[i:run]
                fmt = struct.Struct(">" + "".join(f.type.fmt for f in group))  # type: ignore[union-attr]
                s = self.const(fmt)
                names = [f"f{k}" for k in range(i, run)]
                read += [
                    "    p = r.pos",
                    f"    if p + {fmt.size} > r.end:",
                    f'        raise JuteError("truncated {self.cls.__name__}")',
                    f"    {', '.join(names)} = {s}.unpack_from(r.data, p)",
                    f"    r.pos = p + {fmt.size}",
                ]
                values = ", ".join(f"self.{f.name}" for f in group)
                write.append(f"    w.raw({s}.pack({values}))")
                args += names
                i = run
                continue
            field = fields[i]
            t = field.type
            local = f"f{i}"
            value = f"self.{field.name}"
            if isinstance(t, Kind):
                if t is TRAILING_BOOL and i != len(fields) - 1:
                    raise TypeError(f"{self.cls.__name__}.{field.name}: trailing field not last")
                read.append(f"    {local} = {t.read_expr}")
                write.append("    " + t.write_stmt.format(v=value))
            elif isinstance(t, Vector):
                ri, wi = self.item_functions(t)
                read.append(f"    {local} = r.vector({ri}) or []")
                write.append(f"    w.vector({value}, {wi})")
            else:
                read.append(f"    {local} = {self.const(t.read)}(r)")
                write.append(f"    {value}.write(w)")
            args.append(local)
            i += 1
        read.append(f"    return cls({', '.join(args)})")
        if len(write) == 1:
            write.append("    pass")
        return "\n".join(read) + "\n\n" + "\n".join(write) + "\n"


def jute_record(cls: type[R]) -> type[R]:
    """Compile `read`/`write` for an attrs record from its annotated fields (wire order)."""
    module = sys.modules[cls.__module__]
    hints = typing.get_type_hints(cls, vars(module), include_extras=True)
    fields = tuple(
        Field(a.name, _field_type(cls, a.name, hints[a.name]))
        for a in attrs.fields(cls)  # type: ignore[arg-type]
    )
    gen = _Gen(cls)
    source = gen.build(fields)
    code = compile(source, f"<jute {cls.__module__}.{cls.__qualname__}>", "exec")
    exec(code, gen.ns)  # code generated from the declared field types
    read: Callable[..., Any] = gen.ns["read"]
    write: Callable[..., Any] = gen.ns["write"]
    read.__qualname__ = f"{cls.__qualname__}.read"
    write.__qualname__ = f"{cls.__qualname__}.write"
    cls.read = classmethod(read)  # type: ignore[assignment,method-assign]
    cls.write = write  # type: ignore[method-assign]
    SCHEMAS[cls] = fields
    SOURCES[cls] = source
    return cls
