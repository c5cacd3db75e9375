"""gitignore-style pattern matching."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from packer.patterns import GlobRule, GlobRules, parse_gitignore


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


# packer keeps its own matcher (build.py runs from a checkout with nothing installed, so the
# build side cannot need pathspec); git itself is the reference it is held to.
_TREE_FILES = [
    "a.log", "a.logx", "top.txt", "sub/top.txt", "doc/a.md", "doc/sub/a.md", "x/doc/a.md",
    "a/x/y/b", "a/q/b", "logs/x/y.txt", "logs/z", "b.txt", "ab.txt", "c.py", "a.py", "#hash",
    "keep.txt", "drop.txt", "deep/down/a.log", "deep/keep.txt", "src/build/out.o",
    "build/lib/m.py", "a/b/cache/f", "cache/f", "name.txt", "dir.d/inner", "x.tmp/y",
    "sp ace.txt", "[ab].py", "q/r/s/t.txt", "foo/bar/baz", "foo/baz", "trail/f",
]  # fmt: skip
_GIT_PATTERNS = [
    "*.log", "/top.txt", "top.txt", "build/", "build", "doc/*.md", "doc/**/*.md", "**/cache",
    "**/cache/", "a/**/b", "logs/**", "logs/*", "?.txt", "[ab].py", "[!ab].py", "\\#hash",
    "*", "*/", "sub/", "/sub/", "**/a.log", "deep/**", "*.d/", "*.tmp", "**", "q/**/t.txt",
    "foo/**/baz", "foo/*/baz", "sp ace.txt", "\\[ab].py", "trail/  ", "a/b/",
    "*.txt\n!keep.txt", "deep/\n!deep/keep.txt", "*\n!*/\n!*.py", "logs/**\n!logs/z",
    "#comment\n*.md", "/a*", "a*", "**/x/**", "x/**/", "*.[lm][od]*",
]  # fmt: skip


def _ours(rules: GlobRules, path: str, is_dir: bool) -> bool:
    # What the walker does: a folder that matches is not entered, so nothing below it can
    # come back (git's rule too).
    parts = path.split("/")
    for depth in range(1, len(parts)):
        if rules.matches("/".join(parts[:depth]), True):
            return True
    return rules.matches(path, is_dir)


def test_matching_agrees_with_git_check_ignore(tmp_path: Path) -> None:
    git = shutil.which("git")
    assert git, "git is needed to hold the matcher to git's own rules"
    subprocess.run([git, "init", "-q", str(tmp_path)], check=True)
    for name in _TREE_FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    paths = sorted(
        {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if ".git" not in p.parts}
    )
    disagreements = []
    ignored = 0
    for text in _GIT_PATTERNS:
        (tmp_path / ".gitignore").write_text(text + "\n")
        proc = subprocess.run(
            [git, "check-ignore", "--no-index", "--stdin"],
            cwd=tmp_path, input="\n".join(paths) + "\n", capture_output=True, text=True,
        )  # fmt: skip
        assert proc.returncode in (0, 1), proc.stderr
        by_git = set(proc.stdout.splitlines())
        ignored += len(by_git)
        rules = GlobRules(parse_gitignore(tmp_path / ".gitignore", ""))
        for path in paths:
            ours = _ours(rules, path, (tmp_path / path).is_dir())
            if ours != (path in by_git):
                disagreements.append(f"{text!r} on {path!r}: git {path in by_git}, packer {ours}")
    assert not disagreements, "\n".join(disagreements)
    assert 0 < ignored < len(paths) * len(_GIT_PATTERNS), "git ignored all or nothing"
