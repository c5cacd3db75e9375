"""requires-python parsing and the check the archive stub runs."""

from __future__ import annotations

import pytest

from packer.errors import ConfigError
from packer.pyversion import parse_requires_python, satisfies


@pytest.mark.parametrize(
    ("spec", "version", "expected"),
    [
        (">=3.9", (3, 9, 0), True),
        (">=3.9", (3, 8, 18), False),
        (">=3.9, <3.12", (3, 11, 7), True),
        (">=3.9, <3.12", (3, 12, 0), False),
        ("~=3.10", (3, 13, 1), True),
        ("~=3.10", (4, 0, 0), False),
        ("~=3.10.2", (3, 10, 1), False),
        ("~=3.10.2", (3, 10, 9), True),
        ("~=3.10.2", (3, 11, 0), False),
        ("==3.11.*", (3, 11, 7), True),
        ("==3.11.*", (3, 12, 0), False),
        ("!=3.10.*", (3, 10, 4), False),
        ("!=3.10.*", (3, 11, 0), True),
        ("==3.11", (3, 11, 0), True),
        ("==3.11", (3, 11, 1), False),
        ("!=3.11.0", (3, 11, 0), False),
        ("<=3.11", (3, 11, 0), True),
        (">3.11", (3, 11, 0), False),
        (">3.11", (3, 11, 1), True),
    ],
)
def test_specifiers(spec: str, version: tuple[int, int, int], expected: bool) -> None:
    assert satisfies(version, parse_requires_python(spec)) is expected


@pytest.mark.parametrize(
    "spec", ["", "3.9", ">=three", ">=3.9rc1", "~=3", ">=3.*", "===3.9", ">=3.9,"]
)
def test_malformed_specifiers_are_refused_with_the_spec_named(spec: str) -> None:
    with pytest.raises(ConfigError, match="requires-python"):
        parse_requires_python(spec)


# The stub cannot import packaging, so packer parses requires-python itself; packaging is the
# reference it is held to, on every spec form packer accepts and versions around each bound.
_SPECS = [
    ">=3.9", ">3.9", "<3.12", "<=3.12", "==3.11", "!=3.11", "==3.11.*", "!=3.10.*", "~=3.10",
    "~=3.10.2", ">=3.9,<4", ">=3.9, !=3.10.*, <3.13", "==3", "==3.*", ">=3.11.0", "<3.11.5",
    "~=3.9.0", ">3", "<=3.10.0", "!=3.12.1", ">=3.8,<3.8.10",
]  # fmt: skip


def test_every_accepted_spec_agrees_with_packaging() -> None:
    from packaging.specifiers import SpecifierSet

    versions = [(3, minor, micro) for minor in range(7, 15) for micro in (0, 1, 2, 5, 9, 10, 11)]
    versions += [(2, 7, 18), (4, 0, 0), (4, 1, 0)]
    disagreements = []
    for spec in _SPECS:
        clauses = parse_requires_python(spec)
        reference = SpecifierSet(spec)
        for version in versions:
            ours = satisfies(version, clauses)
            theirs = reference.contains(".".join(map(str, version)))
            if ours != theirs:
                disagreements.append(f"{spec} on {version}: packaging {theirs}, packer {ours}")
    assert not disagreements, "\n".join(disagreements)
