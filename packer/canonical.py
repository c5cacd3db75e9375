"""Marshal output that does not depend on the state of the process that wrote it.

``marshal.dumps`` marks an object for back-references (``FLAG_REF``) when its reference count
is above one, and a string the compiler interned is counted by every live object of the
process that uses the same string. So the same source compiles to different ``.pyc`` bytes
in a fresh ``packer build`` and in a long-lived process (a test run, an IDE, a build script
that imported other code): the flags differ, and every back-reference index after them.
:func:`canonical` rewrites a marshalled code object so that exactly the objects that are
referenced back carry the flag, numbered in order: the same code gives the same bytes.

It reads the format CPython 3.8 to 3.13 write (``marshal`` version 4, with the code object
layout of 3.8-3.10 or of 3.11-3.13); anything else is returned as it is.
"""

from __future__ import annotations

import struct
import sys

__all__ = ["FORM", "canonical", "reads"]

#: The version of the form :func:`canonical` writes; it keys cached bytecode, so it changes
#: whenever the same input would give other bytes.
FORM = 1

_FLAG_REF = 0x80
_FIXED = {ord(c): n for c, n in (("0", 0), ("N", 0), ("F", 0), ("T", 0), ("S", 0), (".", 0),
                                 ("i", 4), ("g", 8), ("y", 16), ("I", 8))}  # fmt: skip
_SIZED32 = frozenset(map(ord, "stuaA"))  # 4-byte length, then that many bytes
_SIZED8 = frozenset(map(ord, "zZ"))  # 1-byte length
_CONTAINERS32 = frozenset(map(ord, "([<>"))  # 4-byte count, then the items


def reads(version: tuple[int, int]) -> bool:
    """Whether CPython *version*'s marshal output is a format :func:`canonical` rewrites."""
    return (3, 8) <= version <= (3, 13)


_SUPPORTED = reads(sys.version_info[:2])
#: The code object's fields as marshal writes them: fixed 4-byte ints, then objects, then the
#: first line number, then the objects after it. (This module also runs inside each target
#: Python that compiles its own bytecode, 3.9 included: see packer.targets.)
if sys.version_info[:2] >= (3, 11):  # noqa: UP036
    # argcount, posonlyargcount, kwonlyargcount, stacksize, flags; code, consts, names,
    # localsplusnames, localspluskinds, filename, name, qualname; linetable, exceptiontable
    _CODE = (5, 8, 2)
else:
    # argcount, posonlyargcount, kwonlyargcount, nlocals, stacksize, flags; code, consts,
    # names, varnames, freevars, cellvars, filename, name; lnotab or linetable
    _CODE = (6, 8, 1)


class _Unknown(Exception):
    """A part of the stream this reader does not know: leave the bytes alone."""


_U32 = struct.Struct("<I").unpack_from
_I32 = struct.Struct("<i").unpack_from
_FIXED_SIZES = bytes(_FIXED.get(kind, 255) for kind in range(128))
_KIND = {kind: i for i, kinds in enumerate((_SIZED8, _SIZED32, _CONTAINERS32)) for kind in kinds}


def _scan(data: bytes) -> tuple[list[int], list[tuple[int, int]]]:
    """The offsets of the type bytes of objects flagged for back-references, in the order
    marshal numbers them, and each back-reference (its payload's offset, the index it names).

    Iterative, with a stack of what is left to read (a count of objects, or a negative count
    of bytes to skip), since this runs over every module a build compiles.
    """
    flagged: list[int] = []
    refs: list[tuple[int, int]] = []
    ints, before, after = _CODE
    fixed, kinds = _FIXED_SIZES, _KIND
    pos = 0
    todo = [1]
    while todo:
        left = todo.pop()
        if left < 0:
            pos -= left
            continue
        if left > 1:
            todo.append(left - 1)
        code = data[pos]
        if code & _FLAG_REF:
            flagged.append(pos)
        kind = code & ~_FLAG_REF
        pos += 1
        size = fixed[kind]
        if size != 255:
            pos += size
            continue
        group = kinds.get(kind)
        if group == 0:  # short string: 1-byte length
            pos += 1 + data[pos]
        elif group == 1:  # string or bytes: 4-byte length
            pos += 4 + _U32(data, pos)[0]
        elif group == 2:  # tuple, list, set, frozenset: 4-byte count
            count = _U32(data, pos)[0]
            pos += 4
            if count:
                todo.append(count)
        elif kind == 0x29:  # ")": small tuple, 1-byte count
            count = data[pos]
            pos += 1
            if count:
                todo.append(count)
        elif kind == 0x72:  # "r": a back-reference
            refs.append((pos, _U32(data, pos)[0]))
            pos += 4
        elif kind == 0x63:  # "c": a code object
            pos += ints * 4
            todo += (after, -4, before)
        elif kind == 0x6C:  # "l": a long, in 15-bit digits
            pos += 4 + 2 * abs(_I32(data, pos)[0])
        else:  # dicts and anything else never appear in a code object's constants
            raise _Unknown
        if pos > len(data):
            raise _Unknown
    if pos != len(data):
        raise _Unknown
    return flagged, refs


def canonical(data: bytes) -> bytes:
    """*data* (a ``marshal.dumps`` of a code object) with back-reference flags on exactly the
    objects referenced back, renumbered; *data* itself when it is not a stream this knows."""
    if not _SUPPORTED:
        return data
    try:
        flagged, refs = _scan(data)
    except (_Unknown, struct.error, IndexError):
        return data
    used = {index for _, index in refs}
    if any(index >= len(flagged) for index in used):
        return data
    renumber: dict[int, int] = {}
    out = bytearray(data)
    for index, at in enumerate(flagged):
        if index in used:
            renumber[index] = len(renumber)
        else:
            out[at] &= ~_FLAG_REF
    for at, index in refs:
        out[at : at + 4] = struct.pack("<I", renumber[index])
    return bytes(out)
