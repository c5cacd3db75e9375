"""Lock files: every dependency pinned with its hashes, for every target at once.

``packer lock`` resolves once for all Pythons and platforms (uv's universal resolution: forks
are written as markers, ``exceptiongroup==1.3.2 ; python_full_version < '3.11'``) and writes a
requirements file with hashes; ``packer build --lock FILE`` installs exactly that, each file
checked against its hashes, and nothing else (``--no-deps``).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .dependencies import PipOptions, uv_binary
from .errors import BuildError, ConfigError
from .project import Project
from .targets import Target

__all__ = ["LockInfo", "read_lock", "write_lock"]

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


@dataclass(frozen=True)
class LockInfo:
    """A lock file as an archive records it: its digest and its pins."""

    path: Path
    sha256: str
    pins: tuple[str, ...]


def read_lock(path: Path) -> LockInfo:
    """The lock at *path*; ConfigError, in one line, if it is not one packer can install."""
    from .errors import read_input

    data = read_input(path, "lock file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a lock file (not UTF-8)") from None
    pins = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "--hash")):
            continue
        match = _PIN.match(stripped)
        if not match:
            raise ConfigError(f"{path}: not a lock file: {stripped[:80]!r} is not NAME==VERSION")
        pins.append(f"{match[1]}=={match[2]}")
    if "--hash=" not in text and pins:
        raise ConfigError(f"{path}: not a lock file: it has no hashes (write it with packer lock)")
    return LockInfo(path, hashlib.sha256(data).hexdigest(), tuple(sorted(set(pins))))


def write_lock(
    out: Path,
    project: Project | None,
    extras: Sequence[str],
    requirements: Sequence[Path],
    specs: Sequence[str],
    targets: Sequence[Target],
    pip: PipOptions,
) -> LockInfo:
    """Resolve every input for every Python from the lowest target's (or 3.9) up, on every
    platform, and write the pins with their hashes to *out* (atomically)."""
    lowest = min((t.python for t in targets), default=(3, 9))
    with tempfile.TemporaryDirectory(prefix="packer-lock-") as work:
        inputs: list[str] = []
        if project is not None:
            inputs.append(str(project.root / project.marker))
        inputs += [str(file) for file in requirements]
        if specs:
            listed = Path(work) / "requirements.in"
            listed.write_text("".join(f"{spec}\n" for spec in specs), encoding="utf-8")
            inputs.append(str(listed))
        if not inputs:
            raise ConfigError("nothing to lock: give a project, --with SPEC or -r FILE")
        for file in requirements:
            if not file.is_file():
                raise BuildError(f"{file}: no such requirements file")
        staging = Path(work) / "lock.txt"
        command = [
            uv_binary(), "pip", "compile", "--universal", "--generate-hashes", "--no-header",
            "--no-annotate", "--quiet", "--python-version", f"{lowest[0]}.{lowest[1]}",
            "-o", str(staging), *pip.args(), *inputs,
        ]  # fmt: skip
        for extra in extras:
            command += ["--extra", extra]
        env = {k: v for k, v in os.environ.items() if not k.startswith("UV_PYTHON")}
        proc = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        if proc.returncode != 0:
            lines = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
            reason = " / ".join(lines[:4]) or "no reason given"
            raise BuildError(f"uv could not lock {', '.join(map(str, inputs))}: {reason}")
        from .output import atomic_output

        with atomic_output(out, 0o644) as fp:
            fp.write(staging.read_bytes())
    return read_lock(out)
