"""The interpreter-version check that every archive's stub runs before anything else.

The builder copies the source of :func:`python_supported` into the generated ``__main__.py``,
which must parse on any Python a user might run it with (even 2.7), so that a wrong
interpreter gets one clear line instead of a SyntaxError from deeper in the archive.
Keep this function in the plainest syntax: no annotations, f-strings or keyword-only args.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations only
if TYPE_CHECKING:
    pass

__all__ = ["python_supported"]


def python_supported(clauses, have):
    # type: (list[tuple[str, tuple[int, ...], bool]], tuple[int, ...]) -> bool
    """Whether version *have* meets every ``(op, version, wildcard)`` clause."""
    for op, want, wildcard in clauses:
        if wildcard:
            equal = tuple(have[: len(want)]) == tuple(want)
            if equal != (op == "=="):
                return False
            continue
        width = max(len(want), len(have))
        mine = tuple(have) + (0,) * (width - len(have))
        theirs = tuple(want) + (0,) * (width - len(want))
        if op == "==":
            ok = mine == theirs
        elif op == "!=":
            ok = mine != theirs
        elif op == "<":
            ok = mine < theirs
        elif op == "<=":
            ok = mine <= theirs
        elif op == ">":
            ok = mine > theirs
        else:
            ok = mine >= theirs
        if not ok:
            return False
    return True
