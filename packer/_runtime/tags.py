"""Wheel tags against the running interpreter and machine: whether native code built for a
tag can load here, and how this machine is named in a line that says it cannot.

Stdlib only and Python 3.9 syntax: this module is copied into every archive.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations only
if TYPE_CHECKING:
    from typing import List, Optional, Sequence, Tuple

__all__ = ["describe_needs", "describe_platform", "platform_fits", "tag_fits"]


def tag_fits(tag: str, here: str) -> bool:
    parts = tag.split("-")
    if len(parts) != 3:
        return True
    interpreter, abi, platform = parts
    if not any(platform_fits(p) for p in platform.split(".")):
        return False
    if interpreter.startswith("py"):
        return True
    if abi == "abi3":
        # A stable-ABI wheel loads on its version and every later one.
        return interpreter.startswith("cp") and int(interpreter[3:] or 0) <= int(here[3:])
    return interpreter == here


def _python_words(interpreter: str, abi: str) -> str:
    """``cp310`` with ``abi3`` as a user reads it: ``CPython 3.10 or newer``."""
    names = {"cp": "CPython", "pp": "PyPy", "py": "Python"}
    kind, digits = interpreter[:2], interpreter[2:]
    if kind not in names or not digits.isdigit():
        return interpreter
    version = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    words = "%s %s" % (names[kind], version)
    if abi == "abi3":
        return words + " or newer"
    if abi.endswith("t") and kind == "cp":
        return "free-threaded " + words
    return words


def describe_needs(tags: Sequence[str], with_platform: bool) -> str:
    """What native code built for *tags* needs, in words: ``CPython 3.11``, ``CPython 3.10
    or newer``, with the platform tags when they are the reason too."""
    pythons: List[str] = []
    platforms: List[str] = []
    for tag in tags:
        parts = tag.split("-")
        if len(parts) != 3:
            continue
        words = _python_words(parts[0], parts[1])
        if words not in pythons:
            pythons.append(words)
        if parts[2] not in platforms:
            platforms.append(parts[2])
    text = " or ".join(pythons) or "another Python"
    if with_platform and platforms:
        text += " on " + ", ".join(sorted(platforms))
    return text


_MANYLINUX_ALIASES = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}


def _machine() -> str:
    machine = os.uname().machine if hasattr(os, "uname") else ""
    if sys.platform == "win32":
        import platform

        machine = platform.machine()
    return machine.lower()


def _glibc() -> Optional[Tuple[int, int]]:
    try:
        text = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError, AttributeError):
        return None
    _, _, version = text.partition(" ")
    parts = version.split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (ValueError, IndexError):
        return None


def describe_platform() -> str:
    """This machine as a line says it: ``linux x86_64 (glibc 2.36)``."""
    glibc = _glibc()
    libc = " (glibc %d.%d)" % glibc if glibc else ""
    return "%s %s%s" % (sys.platform, _machine(), libc)


def platform_fits(platform: str) -> bool:
    """Whether a wheel platform tag (``manylinux_2_17_x86_64``, ``macosx_11_0_arm64``,
    ``win_amd64``, ``any``...) can load here, as pip's tag rules decide it."""
    if platform == "any":
        return True
    machine = _machine()
    if sys.platform.startswith("linux"):
        if platform.startswith("linux_"):
            return platform[6:] == machine
        if platform.startswith("musllinux_"):
            return _glibc() is None and platform.endswith("_" + machine)
        for alias, version in _MANYLINUX_ALIASES.items():
            if platform.startswith(alias + "_"):
                arch = platform[len(alias) + 1 :]
                glibc = _glibc()
                return arch == machine and glibc is not None and glibc >= version
        if platform.startswith("manylinux_"):
            fields = platform[10:].split("_", 2)
            if len(fields) != 3 or not (fields[0].isdigit() and fields[1].isdigit()):
                return False
            glibc = _glibc()
            wanted = (int(fields[0]), int(fields[1]))
            return fields[2] == machine and glibc is not None and glibc >= wanted
        return False
    if sys.platform == "darwin":
        if not platform.startswith("macosx_"):
            return False
        fields = platform[7:].split("_", 2)
        if len(fields) != 3:
            return False
        arch = fields[2]
        fits = {"arm64": ("arm64", "universal2"), "x86_64": ("x86_64", "intel", "universal2",
                "universal", "fat64", "fat3")}.get(machine, (machine,))  # fmt: skip
        return arch in fits
    if sys.platform == "win32":
        wanted = {"amd64": "win_amd64", "x86": "win32", "arm64": "win_arm64"}.get(machine)
        return platform == wanted
    return platform.endswith(machine)
