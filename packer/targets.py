"""Targets of a multi-target archive: resolving and installing for each with uv, and merging
what each got into one layout (pure distributions once when every target has them alike)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ._runtime.format import NATIVE_FOLDER, SITE_PACKAGES, VARIANTS_FOLDER
from .buildcache import default_cache, interpreter_identity
from .canonical import reads
from .dependencies import (
    Distribution,
    PipOptions,
    Staged,
    check_requirements,
    run_uv,
    uv_binary,
)
from .errors import BuildError, ConfigError

__all__ = [
    "PLATFORMS",
    "Target",
    "cached_pyc_name",
    "find_interpreter",
    "foreign_bytecode",
    "install_for",
    "merge",
    "parse_target",
]

#: The platforms a target can name: uv's ``--python-platform`` for it, and the wheel platform
#: tag the archive records (uv's defaults: manylinux 2.28 on Linux, macOS 13 on macOS).
PLATFORMS = {
    "linux-x86_64": ("x86_64-manylinux_2_28", "manylinux_2_28_x86_64"),
    "linux-aarch64": ("aarch64-manylinux_2_28", "manylinux_2_28_aarch64"),
    "macos-arm64": ("aarch64-apple-darwin", "macosx_13_0_arm64"),
    "macos-x86_64": ("x86_64-apple-darwin", "macosx_13_0_x86_64"),
    "windows-amd64": ("x86_64-pc-windows-msvc", "win_amd64"),
    "windows-arm64": ("aarch64-pc-windows-msvc", "win_arm64"),
}
_SPEC = re.compile(r"^(?:cp|cpython)?(3)\.?(\d{1,2})(?::([a-z0-9_-]+))?$")


def this_platform() -> str:
    """This machine, as a target names it (linux-x86_64 here)."""
    machine = os.uname().machine.lower()
    machine = {"amd64": "x86_64", "arm64": "aarch64" if sys.platform == "linux" else "arm64"}.get(
        machine, machine
    )
    system = {"linux": "linux", "darwin": "macos", "win32": "windows"}.get(sys.platform, "")
    name = f"{system}-{machine}"
    if name == "windows-x86_64":
        name = "windows-amd64"
    return name


@dataclass(frozen=True)
class Target:
    """One CPython version on one platform."""

    python: tuple[int, int]
    platform: str

    @property
    def uv_platform(self) -> str:
        return PLATFORMS[self.platform][0]

    @property
    def platform_tag(self) -> str:
        return PLATFORMS[self.platform][1]

    @property
    def name(self) -> str:
        return f"cp{self.python[0]}{self.python[1]}-{self.platform_tag}"

    @property
    def version(self) -> str:
        return f"{self.python[0]}.{self.python[1]}"


def parse_target(spec: str) -> Target:
    """``3.12`` (this platform), ``3.12:macos-arm64``, ``cp313:windows-amd64``..."""
    match = _SPEC.match(spec.strip().lower())
    if not match:
        raise ConfigError(
            f"--target {spec!r}: not PYTHON[:PLATFORM], e.g. 3.12 or 3.12:macos-arm64"
        )
    python = (int(match[1]), int(match[2]))
    if python < (3, 9):
        raise ConfigError(f"--target {spec!r}: archives run on CPython 3.9 and newer")
    platform = match[3] or this_platform()
    if platform not in PLATFORMS:
        raise ConfigError(
            f"--target {spec!r}: unknown platform {platform!r} (known: {', '.join(PLATFORMS)})"
        )
    return Target(python, platform)


def find_interpreter(version: tuple[int, int]) -> str | None:
    """A CPython of *version* on this machine, to compile that target's bytecode with: the
    building one, ``pythonX.Y`` on the PATH, or one of pyenv's."""
    if sys.version_info[:2] == version and sys.implementation.name == "cpython":
        return sys.executable
    name = f"python{version[0]}.{version[1]}"
    roots = [os.environ.get("PYENV_ROOT", ""), os.path.expanduser("~/.pyenv")]
    candidates = []
    for root in filter(None, roots):
        folder = Path(root) / "versions"
        if folder.is_dir():
            prefix = f"{version[0]}.{version[1]}."
            found = sorted(
                (p for p in folder.iterdir() if p.name.startswith(prefix)),
                key=lambda p: [int(x) for x in re.findall(r"\d+", p.name)],
            )
            candidates += [str(p / "bin" / name) for p in reversed(found)]
    on_path = shutil.which(name)
    if on_path and "/.pyenv/shims/" not in on_path:  # pyenv's shims run the global version
        candidates.insert(0, on_path)
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def install_for(
    target: Target,
    requirements: Sequence[Path],
    specs: Sequence[str],
    options: PipOptions,
    root: Path,
) -> None:
    """Install *specs* and *requirements* into *root* as *target* would get them: markers and
    wheel tags evaluated for its Python and platform (uv does; pip does not)."""
    command = [
        uv_binary(), "pip", "install", "--target", str(root), "--python-version", target.version,
        "--python-platform", target.uv_platform, "--no-progress", "--quiet",
        *options.args(),
    ]  # fmt: skip
    check_requirements(requirements)
    run_uv(command, requirements, specs, root, f" for {target.name}")


@dataclass
class _Variant:
    dist: Distribution
    root: Path
    targets: list[int] = field(default_factory=list)


def _fingerprint(root: Path, dist: Distribution) -> str:
    digest = hashlib.sha256()
    for rel in dist.files:
        digest.update(rel.encode() + b"\0" + hashlib.sha256((root / rel).read_bytes()).digest())
    return digest.hexdigest()


def merge(targets: Sequence[Target], staged: Sequence[Staged]) -> Staged:
    """One staged set from one per target: a pure distribution every target has alike goes
    to the shared site-packages; any other (pure, or native) gets a folder of its own and
    says which targets it serves."""
    variants: dict[tuple[str, str], _Variant] = {}
    for index, one in enumerate(staged):
        for dist in one.distributions:
            key = (dist.dist_info, _fingerprint(one.root, dist))
            variants.setdefault(key, _Variant(dist, one.root)).targets.append(index)
    everyone = list(range(len(targets)))
    merged: list[Distribution] = []
    for (_, fingerprint), variant in sorted(variants.items()):
        dist = variant.dist
        copy = Distribution(
            dist.name, dist.version, dist.dist_info, list(dist.files), dist.tags,
            dict(dist.console_scripts), root=variant.root,
        )  # fmt: skip
        if dist.native:
            copy.prefix = f"{NATIVE_FOLDER}/{dist.name}-{dist.version}-{fingerprint[:12]}"
            copy.targets = tuple(variant.targets)
        elif variant.targets == everyone:
            copy.prefix = SITE_PACKAGES
        else:
            copy.prefix = f"{VARIANTS_FOLDER}/{dist.name}-{dist.version}-{fingerprint[:12]}"
            copy.targets = tuple(variant.targets)
        merged.append(copy)
    loose = _common_loose(staged)
    return Staged(staged[0].root, merged, loose, targets=tuple(targets))


def _common_loose(staged: Sequence[Staged]) -> list[str]:
    """Files no RECORD claims, which must be the same for every target (they go in the
    shared site-packages)."""
    first = staged[0]
    for other in staged[1:]:
        same = other.loose == first.loose and all(
            (other.root / rel).read_bytes() == (first.root / rel).read_bytes()
            for rel in first.loose
        )
        if not same:
            differing = sorted(set(other.loose) ^ set(first.loose))[:5]
            raise BuildError(
                "the targets' installs left different files that no distribution's RECORD "
                f"claims ({', '.join(differing) or 'same names, other bytes'})"
            )
    return list(first.loose)


#: Run by another target's interpreter (3.9 and newer): compile the sources it is given, on
#: standard input as JSON [[member name, source path, output path], ...], into unchecked
#: hash-based .pyc files (PEP 552), as the building interpreter does for its own.
def _canonical_source() -> str:
    """packer.canonical's code, for the target interpreter to run before _COMPILE."""
    import inspect

    from . import canonical as module

    return inspect.getsource(module) + "\n"


_COMPILE = """
import importlib.util, json, marshal, os, sys
failed = []
for name, source, out in json.load(sys.stdin):
    with open(source, "rb") as fp:
        data = fp.read()
    try:
        code = compile(data, name, "exec", dont_inherit=True, optimize=0)
    except (SyntaxError, ValueError):
        failed.append(name)
        continue
    body = importlib.util.MAGIC_NUMBER + (1).to_bytes(4, "little")
    body += importlib.util.source_hash(data) + canonical(marshal.dumps(code))
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "wb") as fp:
        fp.write(body)
json.dump(failed, sys.stdout)
"""


def cached_pyc_name(member: str, version: tuple[int, int]) -> str:
    """Where CPython *version*'s bytecode of *member* goes: ``__pycache__`` beside it."""
    head, _, tail = member.rpartition("/")
    stem = tail[: -len(".py")]
    folder = f"{head}/__pycache__" if head else "__pycache__"
    return f"{folder}/{stem}.cpython-{version[0]}{version[1]}.pyc"


def foreign_bytecode(
    sources: Sequence[tuple[str, Path, tuple[int, ...]]],
    targets: Sequence[Target],
    work: Path,
    workers: int,
) -> tuple[list[tuple[str, Path]], list[str]]:
    """Bytecode of *sources* (member name, file, targets that import it; empty: all) for each
    target Python other than the building one, compiled by that Python where it is installed.

    Returns the members to add (name, file) and warnings for the versions not installed here,
    whose modules then compile from source at each start.
    """
    here = sys.version_info[:2]
    # Bytecode is stored only where packer.canonical reads that Python's marshal format: any
    # other's could differ from one build to the next (a reference flag follows reference
    # counts). Those targets compile their modules from source at start.
    versions = sorted({t.python for t in targets} - {here})
    members: list[tuple[str, Path]] = []
    warnings: list[str] = []
    for version in versions:
        wanted = [
            (name, path) for name, path, serves in sources
            if not serves or any(targets[i].python == version for i in serves)
        ]  # fmt: skip
        if not wanted:
            continue
        if not reads(version):
            warnings.append(
                f"CPython {version[0]}.{version[1]}: packer cannot make that Python's bytecode "
                "reproducible, so that target's modules are stored without it and compile at "
                "each start"
            )
            continue
        interpreter = find_interpreter(version)
        if interpreter is None:
            warnings.append(
                f"no CPython {version[0]}.{version[1]} on this machine: that target's modules "
                "are stored without bytecode and compile at each start"
            )
            continue
        out = work / f"cp{version[0]}{version[1]}"
        cache = default_cache()
        identity = _identity(interpreter) if cache is not None else b""
        jobs = []
        for name, path in wanted:
            pyc = out / cached_pyc_name(name, version)
            hit = cache.get_pyc(identity, name, path.read_bytes()) if cache else None
            if hit is not None:
                pyc.parent.mkdir(parents=True, exist_ok=True)
                pyc.write_bytes(hit)
                members.append((cached_pyc_name(name, version), pyc))
            else:
                jobs.append([name, str(path), str(pyc)])
        failed = _compile_with(interpreter, jobs, max(1, workers)) if jobs else set()
        for name, source, written in jobs:
            if name not in failed:
                members.append((cached_pyc_name(name, version), Path(written)))
                if cache is not None:
                    cache.put_pyc(
                        identity, name, Path(source).read_bytes(), Path(written).read_bytes()
                    )
    members.sort()
    return members, warnings


def _identity(interpreter: str) -> bytes:
    """What keys *interpreter*'s entries in the build cache (see
    :func:`~packer.buildcache.interpreter_identity`)."""
    code = (
        "import importlib.util, sys\n"
        "sys.stdout.write(importlib.util.MAGIC_NUMBER.hex() + '\\n' + sys.version)"
    )
    proc = subprocess.run([interpreter, "-I", "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"{interpreter}: cannot run it to compile its target's bytecode")
    magic, _, version = proc.stdout.partition("\n")
    return interpreter_identity(bytes.fromhex(magic), version)


def _compile_with(interpreter: str, jobs: list[list[str]], workers: int) -> set[str]:
    import json

    chunks = [jobs[i::workers] for i in range(workers) if jobs[i::workers]]
    # A fixed hash seed: before 3.11, marshal writes a frozenset constant in the set's own
    # order, which follows the seed. Nothing else of the environment's PYTHON* is taken.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONHASHSEED"] = "0"
    procs = [
        subprocess.Popen(
            [interpreter, "-s", "-c", _canonical_source() + _COMPILE],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in chunks
    ]
    failed: set[str] = set()
    for proc, chunk in zip(procs, chunks, strict=True):
        out, err = proc.communicate(json.dumps(chunk))
        if proc.returncode != 0:
            last = err.strip().splitlines()[-1:] or ["no reason given"]
            raise BuildError(f"{interpreter}: compiling the target's bytecode failed: {last[0]}")
        failed.update(json.loads(out))
    return failed
