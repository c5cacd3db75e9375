"""Parse ``requires-python`` specifiers into clauses the archive stub can check by itself."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ._runtime.gate import python_supported
from .errors import ConfigError

__all__ = ["Clause", "parse_requires_python", "satisfies"]

_CLAUSE = re.compile(r"^\s*(~=|==|!=|<=|>=|<|>)\s*([0-9]+(?:\.[0-9]+)*)(\.\*)?\s*$")


@dataclass(frozen=True)
class Clause:
    """One comparison against the running interpreter's ``(major, minor, micro)``."""

    op: str
    version: tuple[int, ...]
    wildcard: bool = False

    def as_literal(self) -> tuple[str, tuple[int, ...], bool]:
        return (self.op, self.version, self.wildcard)


def parse_requires_python(spec: str) -> tuple[Clause, ...]:
    """Turn a PEP 440 specifier set such as ``>=3.9,<4`` into clauses.

    Only release segments are accepted (no pre-, post- or dev-releases, no ``===``): these
    specifiers are compared with ``sys.version_info``, which has nothing else.
    ``~=X.Y`` becomes ``>=X.Y`` and ``==X.*``.
    """
    clauses: list[Clause] = []
    parts = [part for part in spec.split(",")]
    if not spec.strip():
        raise ConfigError("requires-python: empty specifier")
    for part in parts:
        match = _CLAUSE.match(part)
        if match is None:
            raise ConfigError(f"requires-python: cannot parse {part.strip()!r} in {spec!r}")
        op, text, star = match.groups()
        version = tuple(int(n) for n in text.split("."))
        if star and op not in ("==", "!="):
            raise ConfigError(f"requires-python: '.*' only goes with == or != in {spec!r}")
        if op == "~=":
            if len(version) < 2:
                raise ConfigError(f"requires-python: ~= needs at least two parts in {spec!r}")
            clauses.append(Clause(">=", version))
            clauses.append(Clause("==", version[:-1], wildcard=True))
        else:
            clauses.append(Clause(op, version, wildcard=bool(star)))
    return tuple(clauses)


def satisfies(have: tuple[int, ...], clauses: tuple[Clause, ...]) -> bool:
    """Whether interpreter version *have* meets every clause, as the archive stub decides it."""
    return python_supported([clause.as_literal() for clause in clauses], have)
