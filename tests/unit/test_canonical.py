"""Bytecode bytes that do not depend on what else the writing process holds."""

from __future__ import annotations

import marshal
import os
import sys
from pathlib import Path

import pytest

from packer.canonical import canonical

pytestmark = pytest.mark.skipif(
    not (3, 11) <= sys.version_info[:2] <= (3, 13), reason="the marshal layout it reads"
)


def _stdlib_sources(count: int) -> list[Path]:
    return sorted(Path(os.__file__).parent.glob("*.py"))[:count]


def test_the_code_is_the_same_code() -> None:
    checked = 0
    for path in _stdlib_sources(150):
        code = compile(path.read_bytes(), path.name, "exec", dont_inherit=True)
        data = marshal.dumps(code)
        assert marshal.loads(canonical(data)) == code, path
        assert canonical(canonical(data)) == canonical(data)
        checked += 1
    assert checked > 100


def test_a_flag_set_by_someone_elses_reference_is_taken_out() -> None:
    """An object is flagged for back-references when its count is above one: a reference
    held elsewhere in the process flags it though nothing in the stream refers back to it."""
    source = "X = ('a tuple', 'of strings that are not names', 12345678901234567890)\n"
    code = compile(source, "m", "exec")
    alone = marshal.dumps(code)
    held = code.co_consts[0]  # one more reference to the constant tuple
    shared = marshal.dumps(code)
    assert alone != shared  # the flag differs, and nothing else
    assert canonical(alone) == canonical(shared)
    assert held is code.co_consts[0]


def test_back_references_are_kept_and_renumbered() -> None:
    source = "def f(a, b):\n    return a + b, 'same text here', 'same text here'\nf(1, 2)\n"
    code = compile(source, "m", "exec")
    data = canonical(marshal.dumps(code))
    assert b"r" in data and marshal.loads(data) == code


def test_what_it_cannot_read_it_leaves_alone() -> None:
    assert canonical(b"not marshal") == b"not marshal"
    assert canonical(marshal.dumps([1, 2])[:-1]) == marshal.dumps([1, 2])[:-1]
