"""Build an archive: select files, compile bytecode, write the stub, manifest and digest."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from . import _runtime
from ._runtime.archive import format_comment
from ._runtime.layout import (
    APP_MAIN_MODULE,
    FORMAT_VERSION,
    MANIFEST_NAME,
    RESERVED_PREFIXES,
    RUNTIME_PACKAGE,
    STUB_NAME,
)
from ._version import __version__
from .config import (
    DEFAULT_INTERPRETER,
    DEFAULT_LEVEL,
    Options,
    load_config,
    project_requires_python,
)
from .entry import EntryPoint, parse_entry
from .errors import BuildError, ConfigError, EntryPointError, SourceError
from .producer import Job, produce_in_order
from .pyversion import parse_requires_python
from .selection import Patterns, Selection, select_files
from .stub import render_stub
from .zipwriter import EXEC_MODE, FILE_MODE, ZipWriter, directory, prepare

__all__ = ["BuildResult", "build"]

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class BuildResult:
    """What :func:`build` wrote."""

    output: Path
    members: int
    #: Bytes of the archive file.
    size: int
    #: Bytes of the members before compression.
    stored_size: int
    seconds: float
    build_id: str
    digest: str
    entry: str
    names: tuple[str, ...]
    warnings: tuple[str, ...]

    @property
    def ratio(self) -> float:
        """Archive size as a fraction of the uncompressed members."""
        return self.size / self.stored_size if self.stored_size else 1.0

    def summary(self) -> str:
        """The one-line summary the CLI prints."""
        return (
            f"{self.output.name}: {self.members} members, {_human(self.size)} "
            f"({self.ratio:.0%} of {_human(self.stored_size)}), {self.seconds:.2f} s, "
            f"build {self.build_id}"
        )


def build(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str] | None = None,
    *,
    entry: str | None = None,
    python: str | None = None,
    shebang: bool | None = None,
    requires_python: str | None = None,
    compile: bool | None = None,
    compress: bool | None = None,
    compression_level: int | None = None,
    include: Iterable[str] | None = None,
    exclude: Iterable[str] | None = None,
    gitignore: bool | None = None,
    follow_symlinks: bool | None = None,
    jobs: int | None = None,
    config: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
) -> BuildResult:
    """Pack the folder *source* into the archive *output* and return what was written.

    Every keyword not given (None) comes from *config* when given, else from
    ``[tool.packer]`` in *source*'s ``pyproject.toml``, else from the defaults. *output*
    defaults to ``<source>.pyz`` beside *source*. *jobs* caps the worker processes used for
    big builds (default: one per CPU; 1 for none); the output does not depend on it.
    Nothing is written unless the whole build succeeds; an existing *output* is replaced
    only then.
    """
    started = time.perf_counter()
    src = Path(source)
    given = Options(
        output=Path(output) if output is not None else None,
        entry=entry,
        python=python,
        shebang=shebang,
        requires_python=requires_python,
        compile=compile,
        compress=compress,
        compression_level=compression_level,
        include=tuple(include) if include is not None else None,
        exclude=tuple(exclude) if exclude is not None else None,
        gitignore=gitignore,
        follow_symlinks=follow_symlinks,
        jobs=jobs,
    )
    options = _resolve_options(src, given, Path(config) if config is not None else None)
    out = _check_output(src, options)
    plan = _plan(src, out, options)
    names, stored, digest, build_id = _write(plan, out, options, progress)
    return BuildResult(
        output=out,
        members=len(names),
        size=out.stat().st_size,
        stored_size=stored,
        seconds=time.perf_counter() - started,
        build_id=build_id,
        digest=digest,
        entry=plan.entry_text,
        names=tuple(names),
        warnings=tuple(plan.selection.warnings + plan.warnings),
    )


def _resolve_options(src: Path, given: Options, config: Path | None) -> Options:
    if config is not None:
        from_file = load_config(config, table_required=config.name == "pyproject.toml")
    elif (src / "pyproject.toml").is_file():
        from_file = load_config(src / "pyproject.toml")
    else:
        from_file = Options()
    options = given.merged_over(from_file)
    if options.requires_python is None and (src / "pyproject.toml").is_file():
        options = options.merged_over(
            Options(requires_python=project_requires_python(src / "pyproject.toml"))
        )
    if options.jobs is not None and options.jobs < 1:
        raise ConfigError(f"jobs must be at least 1, not {options.jobs}")
    level = options.compression_level
    if level is not None and not 0 <= level <= 9:
        raise ConfigError(f"compression level must be from 0 to 9, not {level}")
    return options


def _check_output(src: Path, options: Options) -> Path:
    out = options.output
    if out is None:
        resolved = src.resolve()
        out = resolved.parent / f"{resolved.name}.pyz"
    out = Path(os.path.abspath(out))
    if not out.parent.is_dir():
        raise BuildError(f"{out}: the output folder {out.parent} does not exist")
    if out.is_dir():
        raise BuildError(f"{out}: is a folder; give the archive's file name")
    return out


@dataclass
class _Plan:
    selection: Selection
    entry: EntryPoint
    entry_text: str
    requires_python: str | None
    stub: str
    warnings: list[str]


def _plan(src: Path, out: Path, options: Options) -> _Plan:
    """Everything decided and checked before a byte is written."""
    if not src.exists():
        raise SourceError(f"{src}: no such folder")
    if not src.is_dir():
        raise SourceError(f"{src}: not a folder")
    patterns = Patterns(
        include=options.include or (),
        exclude=options.exclude or (),
        use_gitignore=options.gitignore is not False,
    )
    real_out = out.resolve()
    if real_out.is_relative_to(src.resolve()):
        rel = real_out.relative_to(src.resolve()).as_posix()
        if patterns.selects(src.resolve(), rel):
            raise BuildError(
                f"{out}: the output is inside the source folder and would be packed into the "
                "next build; write it elsewhere or exclude it (--exclude, .gitignore)"
            )
    selection = select_files(
        src,
        patterns=patterns,
        follow_symlinks=bool(options.follow_symlinks),
        skip=lambda name, path: _is_output(name, path, real_out),
    )
    by_name = {item.name: item for item in selection.files}
    for name in by_name:
        if name.startswith(RESERVED_PREFIXES):
            raise SourceError(f"{src / name}: the name {name!r} is reserved for packer's own files")

    def read_member(name: str) -> bytes | None:
        item = by_name.get(name)
        if item is None:
            return None
        try:
            return item.path.read_bytes()
        except OSError as exc:
            raise SourceError(f"{item.path}: cannot read: {exc.strerror}") from None

    has_main = STUB_NAME in by_name
    if options.entry is not None:
        if has_main:
            raise EntryPointError(
                f"{src / STUB_NAME} exists and an entry point ({options.entry}) was given: "
                f"remove one (or --exclude {STUB_NAME})"
            )
        entry = parse_entry(options.entry)
        entry.check(read_member, f"the source folder {src}")
        entry_text = entry.value
    elif has_main:
        entry = EntryPoint("module", APP_MAIN_MODULE)
        entry_text = STUB_NAME
    else:
        raise EntryPointError(
            f"{src}: no entry point: give --entry module:function (or module), or add a {STUB_NAME}"
        )
    requires = options.requires_python
    clauses = parse_requires_python(requires) if requires else ()
    stub = render_stub(entry.kind, entry.value, requires, clauses)
    return _Plan(selection, entry, entry_text, requires, stub, [])


def _is_output(name: str, path: Path, out: Path) -> bool:
    """Whether a walked entry is the output, or a temporary file of a build writing it."""
    if name != out.name and not (name.startswith(f".{out.name}.") and name.endswith(".tmp")):
        return False  # cheap test first: resolving every path would double the walk's cost
    real = path.resolve()
    return real == out or (real.parent == out.parent and name != out.name)


# --- writing ------------------------------------------------------------------------------


def _jobs(plan: _Plan, options: Options) -> list[Job]:
    jobs: list[Job] = []
    do_compile = options.compile is not False
    for item in plan.selection.files:
        name = APP_MAIN_MODULE + ".py" if item.name == STUB_NAME else item.name
        mode = EXEC_MODE if item.executable else FILE_MODE
        jobs.append(
            Job(name, item.path, None, mode, do_compile and name.endswith(".py"), item.size)
        )
    runtime_dir = Path(_runtime.__file__).parent
    for path in sorted(runtime_dir.glob("*.py")):
        name = f"{RUNTIME_PACKAGE}/{path.name}"
        jobs.append(Job(name, path, None, FILE_MODE, do_compile, path.stat().st_size))
    stub = plan.stub.encode("utf-8")
    jobs.append(Job(STUB_NAME, None, stub, FILE_MODE, do_compile, len(stub)))
    return jobs


def _write(
    plan: _Plan, out: Path, options: Options, progress: Progress | None
) -> tuple[list[str], int, str, str]:
    level = (
        None
        if options.compress is False
        else (options.compression_level if options.compression_level is not None else DEFAULT_LEVEL)
    )
    epoch = _source_date_epoch()
    interpreter = options.python if options.python is not None else DEFAULT_INTERPRETER
    with_shebang = options.shebang is not False
    prefix = _shebang(interpreter) if with_shebang else b""
    jobs = _jobs(plan, options)
    warnings = plan.warnings
    try:
        fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    except OSError as exc:
        raise BuildError(f"{out}: cannot write in {out.parent}: {exc.strerror}") from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fp:
            writer = ZipWriter(fp, prefix, epoch)
            entries: dict[str, dict[str, object]] = {}
            stored = 0
            folders_written: set[str] = set()
            for done, (job, members) in enumerate(
                produce_in_order(jobs, level, workers=options.jobs), start=1
            ):
                if job.compile and len(members) == 1:
                    warnings.append(f"{job.name}: not compiled (syntax error); shipped as source")
                for member in members:
                    for folder in _parents(member.name):
                        if folder not in folders_written:
                            folders_written.add(folder)
                            writer.add(directory(folder))
                    writer.add(member)
                    entries[member.name] = {"sha256": member.sha256, "size": member.size}
                    stored += member.size
                if progress is not None:
                    progress(done, len(jobs))
            manifest, build_id = _manifest(
                plan, options, interpreter if with_shebang else None, epoch, entries
            )
            for folder in _parents(MANIFEST_NAME):
                if folder not in folders_written:
                    folders_written.add(folder)
                    writer.add(directory(folder))
            manifest_member = prepare(MANIFEST_NAME, manifest, FILE_MODE, level)
            writer.add(manifest_member)
            stored += manifest_member.size
            digest = writer.finish(lambda d: format_comment({"sha256": d}))
            fp.flush()
            os.fsync(fp.fileno())
        os.chmod(tmp, _output_mode(with_shebang))
        os.replace(tmp, out)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise BuildError(f"{out}: cannot write: {exc.strerror or exc}") from None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    names = sorted([*entries, MANIFEST_NAME])
    return names, stored, digest, build_id


def _parents(name: str) -> list[str]:
    parts = name.split("/")[:-1]
    return ["/".join(parts[: i + 1]) + "/" for i in range(len(parts))]


def _manifest(
    plan: _Plan,
    options: Options,
    interpreter: str | None,
    epoch: int,
    entries: dict[str, dict[str, object]],
) -> tuple[bytes, str]:
    given_epoch = os.environ.get("SOURCE_DATE_EPOCH")
    body: dict[str, object] = {
        "format": FORMAT_VERSION,
        "packer_version": __version__,
        "entry": {"kind": plan.entry.kind, "value": plan.entry_text},
        "interpreter": interpreter,
        "requires_python": plan.requires_python,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch)) if given_epoch else None,
        "bytecode": _bytecode_tag() if options.compile is not False else None,
        "members": dict(sorted(entries.items())),
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")
    build_id = _sha256(canonical)[:16]
    body["build_id"] = build_id
    return json.dumps(body, sort_keys=True, indent=1).encode("utf-8") + b"\n", build_id


def _bytecode_tag() -> str:
    return sys.implementation.cache_tag or f"{sys.implementation.name}-unknown"


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _source_date_epoch() -> int:
    value = os.environ.get("SOURCE_DATE_EPOCH")
    if value is None or value == "":
        return 315532800  # 1980-01-01T00:00:00Z, the earliest time a zip can record
    try:
        return int(value)
    except ValueError:
        raise ConfigError(
            f"SOURCE_DATE_EPOCH must be whole seconds since 1970, not {value!r}"
        ) from None


def _shebang(interpreter: str) -> bytes:
    text = interpreter.strip()
    if not text or "\n" in text or "\r" in text or "\0" in text:
        raise ConfigError(f"interpreter {interpreter!r}: must be one non-empty line")
    line = b"#!" + text.encode("utf-8") + b"\n"
    return line


def _output_mode(executable: bool) -> int:
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if executable else 0o666) & ~umask


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"
