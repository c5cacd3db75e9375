"""gitignore-style patterns, used for ``.gitignore`` files and ``--include``/``--exclude``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["GlobRule", "GlobRules", "parse_gitignore"]


@dataclass(frozen=True)
class GlobRule:
    """One compiled pattern, relative to the folder *base* ("" for the top)."""

    text: str
    regex: re.Pattern[str]
    base: str = ""
    negate: bool = False
    dir_only: bool = False
    #: Paths are matched as ``prefix/path``: set for rules read above the source folder.
    prefix: str = ""

    def matches(self, path: str, is_dir: bool) -> bool:
        """Whether *path* (POSIX, relative to the top) matches this pattern."""
        if self.dir_only and not is_dir:
            return False
        if self.prefix:
            path = f"{self.prefix}/{path}"
        if self.base:
            if not path.startswith(self.base + "/"):
                return False
            path = path[len(self.base) + 1 :]
        return self.regex.fullmatch(path) is not None

    @classmethod
    def compile(cls, line: str, base: str = "") -> GlobRule | None:
        """Compile one gitignore line; None for blank lines and comments."""
        text = line.rstrip("\n").rstrip("\r")
        # Trailing spaces are ignored unless escaped with a backslash.
        while text.endswith(" ") and not text.endswith("\\ "):
            text = text[:-1]
        if not text or text.startswith("#"):
            return None
        negate = False
        if text.startswith("!"):
            negate, text = True, text[1:]
        elif text.startswith(("\\!", "\\#")):
            text = text[1:]
        dir_only = text.endswith("/")
        text = text.rstrip("/")
        if not text:
            return None
        # A slash at the start or in the middle anchors the pattern to its folder.
        anchored = "/" in text
        text = text.lstrip("/")
        body = _translate(text)
        if not anchored:
            body = "(?:.*/)?" + body
        try:
            regex = re.compile(body, re.DOTALL)
        except re.error:
            return None  # git skips a pattern it cannot use; so do we
        return cls(line.strip(), regex, base, negate, dir_only)


class GlobRules:
    """An ordered list of patterns where, as in git, the last one that matches decides."""

    def __init__(self, patterns: list[GlobRule] | None = None) -> None:
        self.patterns: list[GlobRule] = list(patterns or ())

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def extend(self, patterns: list[GlobRule]) -> None:
        self.patterns.extend(patterns)

    def decide(self, path: str, is_dir: bool) -> bool | None:
        """True if matched (and not negated), False if a negation matched last, None if none."""
        for pattern in reversed(self.patterns):
            if pattern.matches(path, is_dir):
                return not pattern.negate
        return None

    def matches(self, path: str, is_dir: bool) -> bool:
        return self.decide(path, is_dir) is True


def parse_gitignore(file: Path, base: str) -> list[GlobRule]:
    """The patterns of one ``.gitignore`` file whose folder is *base* (relative, POSIX)."""
    text = file.read_text(encoding="utf-8", errors="surrogateescape")
    compiled = (GlobRule.compile(line, base) for line in text.splitlines())
    return [pattern for pattern in compiled if pattern is not None]


def _translate(pattern: str) -> str:
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            if pattern.startswith("**", i):
                at_start = i == 0 or pattern[i - 1] == "/"
                if at_start and pattern.startswith("**/", i):
                    out.append("(?:.*/)?")  # zero or more folders
                    i += 3
                    continue
                if at_start and i + 2 == n:
                    out.append(".*")  # everything inside
                    i += 2
                    continue
                out.append("[^/]*")
                i += 2
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            start = i + 1
            if pattern[start : start + 1] in ("!", "^"):
                start += 1
            if pattern[start : start + 1] == "]":
                start += 1  # a leading ] is a member of the class
            end = pattern.find("]", start)
            if end < 0:
                out.append(re.escape(c))
            else:
                inner = pattern[i + 1 : end]
                if inner[:1] in ("!", "^"):
                    inner = "^" + inner[1:]
                out.append("[" + inner.replace("\\", "\\\\") + "]")
                i = end
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)
