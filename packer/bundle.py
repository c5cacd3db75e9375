"""Install dependencies with pip into a staging folder and describe what landed there."""

from __future__ import annotations

import configparser
import csv
import io
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import BuildError

__all__ = ["Distribution", "PipOptions", "Staged", "install", "scan"]

#: File name endings of native code: extension modules and the shared libraries wheels carry.
_NATIVE = re.compile(r"\.(so|pyd|dylib|dll)(\.[0-9.]+)?$")


@dataclass(frozen=True)
class PipOptions:
    """Where pip may look: passed through to ``pip install`` as they are."""

    find_links: tuple[str, ...] = ()
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    no_index: bool = False

    def args(self) -> list[str]:
        args: list[str] = []
        for link in self.find_links:
            args += ["--find-links", link]
        if self.index_url:
            args += ["--index-url", self.index_url]
        for url in self.extra_index_urls:
            args += ["--extra-index-url", url]
        if self.no_index:
            args.append("--no-index")
        return args


@dataclass
class Distribution:
    """One installed distribution: its files relative to the staging folder."""

    name: str
    version: str
    dist_info: str
    files: list[str] = field(default_factory=list)
    tags: tuple[str, ...] = ()
    console_scripts: dict[str, str] = field(default_factory=dict)

    @property
    def native(self) -> bool:
        """Whether it carries native code (which cannot be imported from a zip)."""
        return any(_NATIVE.search(name) or ".libs/" in name for name in self.files)


@dataclass
class Staged:
    """What pip installed: distributions, plus files no RECORD claims (kept, as pip left them)."""

    root: Path
    distributions: list[Distribution]
    loose: list[str]

    def console_script(self, name: str) -> str | None:
        for dist in self.distributions:
            if name in dist.console_scripts:
                return dist.console_scripts[name]
        return None


def install(
    requirements: Sequence[Path], specs: Sequence[str], options: PipOptions, target: Path
) -> None:
    """Run pip to install *requirements* files and *specs* into *target*; BuildError on failure.

    pip's own cache and configuration apply. Bytecode is left to the builder, which writes it
    reproducibly; scripts pip writes into ``bin/`` are not packed.
    """
    for file in requirements:
        if not file.is_file():
            raise BuildError(f"{file}: no such requirements file")
    command = [
        sys.executable, "-m", "pip", "install", "--target", str(target), "--no-compile",
        "--disable-pip-version-check", "--no-warn-script-location", "--no-input",
        *options.args(),
    ]  # fmt: skip
    for file in requirements:
        command += ["--requirement", str(file)]
    command += list(specs)
    env = dict(os.environ)
    env.pop("PIP_TARGET", None)
    env.pop("PIP_PREFIX", None)
    try:
        proc = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    except OSError as exc:
        raise BuildError(f"cannot run pip: {exc.strerror}") from None
    if proc.returncode != 0:
        what = ", ".join([*map(str, requirements), *specs])
        raise BuildError(f"pip could not install {what}: {_pip_reason(proc.stderr)}")


def _pip_reason(stderr: str) -> str:
    """pip's reason, in one line: its ERROR lines, else its last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line.removeprefix("ERROR: ") for line in lines if line.startswith("ERROR:")]
    chosen = errors or lines[-1:] or ["no reason given"]
    return " / ".join(chosen)


def scan(root: Path) -> Staged:
    """Describe the distributions in a staging folder from their ``.dist-info`` RECORDs."""
    distributions: list[Distribution] = []
    claimed: set[str] = set()
    for info in sorted(root.glob("*.dist-info")):
        metadata = _read_text(info / "METADATA")
        name = _header(metadata, "Name") or info.name.split("-")[0]
        version = _header(metadata, "Version") or "?"
        dist = Distribution(name, version, info.name)
        for row in csv.reader(io.StringIO(_read_text(info / "RECORD"))):
            if not row or not row[0]:
                continue
            rel = os.path.normpath(row[0]).replace(os.sep, "/")
            if rel.startswith("../") or rel.endswith((".pyc", ".pyo")) or "__pycache__/" in rel:
                continue  # scripts in bin/ via ../, and bytecode we write ourselves
            if (root / rel).is_file():
                dist.files.append(rel)
        dist.files.sort()
        claimed.update(dist.files)
        dist.tags = tuple(
            line.split(":", 1)[1].strip()
            for line in _read_text(info / "WHEEL").splitlines()
            if line.startswith("Tag:")
        )
        dist.console_scripts = _console_scripts(_read_text(info / "entry_points.txt"))
        distributions.append(dist)
    loose = sorted(
        path.relative_to(root).as_posix()
        for path in root.rglob("*")
        if path.is_file()
        and path.relative_to(root).parts[0] != "bin"
        and "__pycache__" not in path.parts
        and path.suffix not in (".pyc", ".pyo")
        and path.relative_to(root).as_posix() not in claimed
    )
    return Staged(root, distributions, loose)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""


def _header(metadata: str, key: str) -> str | None:
    for line in metadata.splitlines():
        if not line:
            break  # headers end at the first blank line
        if line.lower().startswith(key.lower() + ":"):
            return line.split(":", 1)[1].strip()
    return None


def _console_scripts(text: str) -> dict[str, str]:
    if not text:
        return {}
    parser = configparser.ConfigParser(delimiters=("=",), interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read_string(text)
    except configparser.Error:
        return {}
    if not parser.has_section("console_scripts"):
        return {}
    return {key: value.strip() for key, value in parser.items("console_scripts")}
