"""gitignore-style pattern matching."""

from __future__ import annotations

import pytest

from packer.patterns import GlobRule, GlobRules


def matches(pattern: str, path: str, is_dir: bool = False, base: str = "") -> bool:
    compiled = GlobRule.compile(pattern, base)
    assert compiled is not None
    return GlobRules([compiled]).matches(path, is_dir)


@pytest.mark.parametrize(
    ("pattern", "path", "is_dir", "expected"),
    [
        ("*.log", "a.log", False, True),
        ("*.log", "deep/down/a.log", False, True),
        ("*.log", "a.logx", False, False),
        ("/top.txt", "top.txt", False, True),
        ("/top.txt", "sub/top.txt", False, False),
        ("build/", "build", True, True),
        ("build/", "build", False, False),
        ("build/", "src/build", True, True),
        ("doc/*.md", "doc/a.md", False, True),
        ("doc/*.md", "doc/sub/a.md", False, False),
        ("doc/*.md", "x/doc/a.md", False, False),
        ("**/cache", "a/b/cache", True, True),
        ("**/cache", "cache", True, True),
        ("a/**/b", "a/b", False, True),
        ("a/**/b", "a/x/y/b", False, True),
        ("logs/**", "logs/x/y.txt", False, True),
        ("?.txt", "a.txt", False, True),
        ("?.txt", "ab.txt", False, False),
        ("[ab].py", "a.py", False, True),
        ("[!ab].py", "a.py", False, False),
        ("[!ab].py", "c.py", False, True),
        ("\\#hash", "#hash", False, True),
        ("name\\ ", "name ", False, True),
        ("*", "anything/at/all", False, True),
    ],
)
def test_gitignore_semantics(pattern: str, path: str, is_dir: bool, expected: bool) -> None:
    assert matches(pattern, path, is_dir) is expected


def test_blank_lines_and_comments_compile_to_nothing() -> None:
    assert GlobRule.compile("") is None
    assert GlobRule.compile("   ") is None
    assert GlobRule.compile("# a comment") is None


def test_base_limits_a_pattern_to_its_folder() -> None:
    assert matches("*.tmp", "sub/a.tmp", base="sub")
    assert not matches("*.tmp", "other/a.tmp", base="sub")
    assert matches("/only", "sub/only", base="sub")
    assert not matches("/only", "sub/deeper/only", base="sub")


def test_last_match_wins_and_negation_reincludes() -> None:
    rules = GlobRules([p for p in (GlobRule.compile("*.txt"), GlobRule.compile("!keep.txt")) if p])
    assert rules.matches("drop.txt", False)
    assert not rules.matches("keep.txt", False)
    assert rules.decide("other.py", False) is None
