"""Marshal output that does not depend on the state of the process that wrote it.

``marshal.dumps`` marks an object for back-references (``FLAG_REF``) when its reference count
is above one, and a string the compiler interned is counted by every live object of the
process that uses the same string. So the same source compiles to different ``.pyc`` bytes
in a fresh ``packer build`` and in a long-lived process (a test run, an IDE, a build script
that imported other code): the flags differ, and every back-reference index after them.
:func:`canonical` rewrites a marshalled code object so that exactly the objects that are
referenced back carry the flag, numbered in order: the same code gives the same bytes.

It reads the format CPython 3.11 to 3.13 write (``marshal`` version 4); anything else is
returned as it is.
"""

from __future__ import annotations

import struct
import sys

__all__ = ["canonical"]

_FLAG_REF = 0x80
_FIXED = {ord(c): n for c, n in (("0", 0), ("N", 0), ("F", 0), ("T", 0), ("S", 0), (".", 0),
                                 ("i", 4), ("g", 8), ("y", 16), ("I", 8))}  # fmt: skip
_SIZED32 = frozenset(map(ord, "stuaA"))  # 4-byte length, then that many bytes
_SIZED8 = frozenset(map(ord, "zZ"))  # 1-byte length
_CONTAINERS32 = frozenset(map(ord, "([<>"))  # 4-byte count, then the items
_SUPPORTED = (3, 11) <= sys.version_info[:2] <= (3, 13)


class _Unknown(Exception):
    """A part of the stream this reader does not know: leave the bytes alone."""


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        #: For each object read with FLAG_REF, in the order marshal numbers them: its
        #: type byte's offset.
        self.flagged: list[int] = []
        #: Offsets of TYPE_REF payloads, and the indexes they name.
        self.refs: list[tuple[int, int]] = []

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise _Unknown
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def u32(self) -> int:
        value: int = struct.unpack("<I", self.take(4))[0]
        return value

    def obj(self) -> None:
        at = self.pos
        code = self.take(1)[0]
        kind = code & ~_FLAG_REF
        if code & _FLAG_REF:
            self.flagged.append(at)  # numbered before its children are read, as marshal does
        if kind in _FIXED:
            self.take(_FIXED[kind])
        elif kind in _SIZED32:
            self.take(self.u32())
        elif kind in _SIZED8:
            self.take(self.take(1)[0])
        elif kind == ord("r"):
            self.refs.append((self.pos, self.u32()))
        elif kind == ord("l"):
            (n,) = struct.unpack("<i", self.take(4))
            self.take(2 * abs(n))
        elif kind == ord(")"):
            for _ in range(self.take(1)[0]):
                self.obj()
        elif kind in _CONTAINERS32:
            for _ in range(self.u32()):
                self.obj()
        elif kind == ord("{"):
            while self.data[self.pos : self.pos + 1] != b"0":
                self.obj()
                self.obj()
            self.take(1)
        elif kind == ord("c"):
            self.take(5 * 4)  # argcount, posonlyargcount, kwonlyargcount, stacksize, flags
            for _ in range(8):  # code, consts, names, localsplusnames, localspluskinds,
                self.obj()  # filename, name, qualname
            self.take(4)  # firstlineno
            self.obj()  # linetable
            self.obj()  # exceptiontable
        else:
            raise _Unknown


def canonical(data: bytes) -> bytes:
    """*data* (a ``marshal.dumps`` of a code object) with back-reference flags on exactly the
    objects referenced back, renumbered; *data* itself when it is not a stream this knows."""
    if not _SUPPORTED:
        return data
    reader = _Reader(data)
    try:
        reader.obj()
    except (_Unknown, struct.error, IndexError):
        return data
    if reader.pos != len(data):
        return data
    used = {index for _, index in reader.refs}
    if any(index >= len(reader.flagged) for index in used):
        return data
    renumber: dict[int, int] = {}
    out = bytearray(data)
    for index, at in enumerate(reader.flagged):
        if index in used:
            renumber[index] = len(renumber)
        else:
            out[at] &= ~_FLAG_REF
    for at, index in reader.refs:
        out[at : at + 4] = struct.pack("<I", renumber[index])
    return bytes(out)
