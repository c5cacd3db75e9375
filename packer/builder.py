"""Build an archive: select files, compile bytecode, write the stub, manifest and digest."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import _runtime
from ._runtime.archive import format_comment
from ._runtime.environment import _normalize
from ._runtime.layout import (
    APP_MAIN_MODULE,
    FORMAT_VERSION,
    MANIFEST_NAME,
    NATIVE_FOLDER,
    RESERVED_PREFIXES,
    RUNTIME_PACKAGE,
    SITE_PACKAGES,
    STUB_NAME,
)
from ._runtime.report import human_size
from ._version import __version__
from .bundle import Distribution, PipOptions, Staged, install, scan
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
from .selection import Patterns, Selection, SourceFile, select_files
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
    #: Bundled distributions: (name, version, has native code).
    distributions: tuple[tuple[str, str, bool], ...] = ()

    @property
    def ratio(self) -> float:
        """Archive size as a fraction of the uncompressed members."""
        return self.size / self.stored_size if self.stored_size else 1.0

    def summary(self) -> str:
        """The one-line summary the CLI prints."""
        return (
            f"{self.output.name}: {self.members} members, {human_size(self.size)} "
            f"({self.ratio:.0%} of {human_size(self.stored_size)}), {self.seconds:.2f} s, "
            f"build {self.build_id}"
        )


def build(
    source: str | os.PathLike[str] | None = None,
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
    requirements: Iterable[str | os.PathLike[str]] | None = None,
    with_packages: Iterable[str] | None = None,
    console_script: str | None = None,
    optional_native: Iterable[str] | None = None,
    find_links: Iterable[str] | None = None,
    index_url: str | None = None,
    extra_index_urls: Iterable[str] | None = None,
    no_index: bool | None = None,
    sign_key: str | os.PathLike[str] | None = None,
    verify_on_start: bool | None = None,
    config: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
) -> BuildResult:
    """Pack the folder *source* (and bundled dependencies) into *output*; say what was written.

    Every keyword not given (None) comes from *config* when given, else from
    ``[tool.packer]`` in *source*'s ``pyproject.toml``, else from the defaults. *output*
    defaults to ``<source>.pyz`` beside *source* (``<console_script>.pyz`` here without one).
    *requirements* (files) and *with_packages* (specs) are installed with pip at build time
    and packed; *find_links*, *index_url*, *extra_index_urls* and *no_index* go to pip.
    *console_script* names a bundled distribution's console script as the entry point.
    *optional_native* names bundled distributions with native code that the application can
    do without: on an interpreter their code does not fit, importing them raises ImportError
    (which the application may catch) instead of the archive refusing to start.
    *sign_key* (an Ed25519 private key file, see ``packer keygen``) signs the archive;
    *verify_on_start* makes it check its digest before running anything.
    *jobs* caps the worker processes used for big builds (default: one per CPU; 1 for none);
    the output does not depend on it. Nothing is written unless the whole build succeeds;
    an existing *output* is replaced only then.
    """
    started = time.perf_counter()
    src = Path(source) if source is not None else None
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
        requirements=tuple(Path(r).absolute() for r in requirements) if requirements else None,
        with_packages=tuple(with_packages) if with_packages else None,
        console_script=console_script,
        optional_native=tuple(optional_native) if optional_native else None,
        find_links=tuple(find_links) if find_links else None,
        index_url=index_url,
        extra_index_urls=tuple(extra_index_urls) if extra_index_urls else None,
        no_index=no_index,
        sign_key=Path(sign_key).absolute() if sign_key is not None else None,
        verify_on_start=verify_on_start,
    )
    options = _resolve_options(src, given, Path(config) if config is not None else None)
    out = _check_output(src, options)
    with contextlib.ExitStack() as stack:
        staged = None
        if options.requirements or options.with_packages:
            staging = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="packer-deps-")))
            install(
                options.requirements or (),
                options.with_packages or (),
                PipOptions(
                    find_links=options.find_links or (),
                    index_url=options.index_url,
                    extra_index_urls=options.extra_index_urls or (),
                    no_index=bool(options.no_index),
                ),
                staging,
            )
            staged = scan(staging)
        plan = _plan(src, out, options, staged)
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
        warnings=tuple(plan.warnings),
        distributions=tuple(
            (dist.name, dist.version, dist.native)
            for dist in (staged.distributions if staged else [])
        ),
    )


def _resolve_options(src: Path | None, given: Options, config: Path | None) -> Options:
    pyproject = src / "pyproject.toml" if src is not None else None
    if config is not None:
        from_file = load_config(config, table_required=config.name == "pyproject.toml")
    elif pyproject is not None and pyproject.is_file():
        from_file = load_config(pyproject)
    else:
        from_file = Options()
    options = given.merged_over(from_file)
    if options.requires_python is None and pyproject is not None and pyproject.is_file():
        options = options.merged_over(Options(requires_python=project_requires_python(pyproject)))
    if options.jobs is not None and options.jobs < 1:
        raise ConfigError(f"jobs must be at least 1, not {options.jobs}")
    level = options.compression_level
    if level is not None and not 0 <= level <= 9:
        raise ConfigError(f"compression level must be from 0 to 9, not {level}")
    if src is None and not (options.requirements or options.with_packages):
        raise SourceError("nothing to pack: give a source folder, or dependencies to bundle")
    if options.console_script is not None and options.entry is not None:
        raise EntryPointError("give an entry point or a console script, not both")
    return options


def _check_output(src: Path | None, options: Options) -> Path:
    out = options.output
    if out is None:
        if src is not None:
            resolved = src.resolve()
            out = resolved.parent / f"{resolved.name}.pyz"
        elif options.console_script:
            out = Path(f"{options.console_script}.pyz")
        else:
            raise BuildError("no output given: use -o/--output")
    out = Path(os.path.abspath(out))
    if not out.parent.is_dir():
        raise BuildError(f"{out}: the output folder {out.parent} does not exist")
    if out.is_dir():
        raise BuildError(f"{out}: is a folder; give the archive's file name")
    return out


@dataclass
class _Plan:
    files: list[SourceFile]
    staged: Staged | None
    entry: EntryPoint
    entry_text: str
    requires_python: str | None
    stub: str
    runtime: dict[str, Any]
    warnings: list[str]


def _select(src: Path, out: Path, options: Options) -> Selection:
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
    for item in selection.files:
        if item.name.startswith(RESERVED_PREFIXES):
            raise SourceError(
                f"{src / item.name}: the name {item.name!r} is reserved for packer's own files"
            )
    return selection


def _plan(src: Path | None, out: Path, options: Options, staged: Staged | None) -> _Plan:
    """Everything decided and checked before a byte is written."""
    warnings: list[str] = []
    files: list[SourceFile] = []
    if src is not None:
        selection = _select(src, out, options)
        files = selection.files
        warnings += selection.warnings
    by_name = {item.name: item.path for item in files}
    if staged is not None:
        for dist in staged.distributions:
            for rel in dist.files:
                by_name.setdefault(rel, staged.root / rel)
        for rel in staged.loose:
            by_name.setdefault(rel, staged.root / rel)

    def read_member(name: str) -> bytes | None:
        path = by_name.get(name)
        if path is None:
            return None
        try:
            return path.read_bytes()
        except OSError as exc:
            raise SourceError(f"{path}: cannot read: {exc.strerror}") from None

    where = f"the source folder {src}" if src is not None else "the bundled distributions"
    if staged is not None and src is not None:
        where = f"the source folder {src} or the bundled distributions"
    has_main = any(item.name == STUB_NAME for item in files)
    spec = options.entry
    if options.console_script is not None:
        target = staged.console_script(options.console_script) if staged else None
        if target is None:
            raise EntryPointError(
                f"console script {options.console_script!r}: no bundled distribution declares it"
            )
        spec = target.split("[")[0].strip()  # drop any [extras]
    if spec is not None:
        if has_main:
            raise EntryPointError(
                f"{src / STUB_NAME if src else STUB_NAME} exists and an entry point ({spec}) "
                f"was given: remove one (or --exclude {STUB_NAME})"
            )
        entry = parse_entry(spec)
        entry.check(read_member, where)
        entry_text = entry.value
    elif has_main:
        entry = EntryPoint("module", APP_MAIN_MODULE)
        entry_text = STUB_NAME
    else:
        raise EntryPointError(
            f"{src or 'archive'}: no entry point: give --entry module:function (or module), "
            f"--console-script NAME, or add a {STUB_NAME}"
        )
    requires = options.requires_python
    clauses = parse_requires_python(requires) if requires else ()
    runtime = _runtime_config(staged, _optional_native(options, staged))
    if options.verify_on_start:
        runtime["verify"] = True
    stub = render_stub(entry.kind, entry.value, requires, clauses, runtime)
    return _Plan(files, staged, entry, entry_text, requires, stub, runtime, warnings)


def _optional_native(options: Options, staged: Staged | None) -> frozenset[str]:
    """The bundled distributions named by ``optional_native``; BuildError for any other name."""
    wanted = {_normalize(name): name for name in options.optional_native or ()}
    bundled = {_normalize(dist.name) for dist in (staged.distributions if staged else [])}
    unknown = [given for key, given in wanted.items() if key not in bundled]
    if unknown:
        raise BuildError(f"--optional-native {unknown[0]}: no bundled distribution has that name")
    return frozenset(wanted)


def _runtime_config(
    staged: Staged | None, optional: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """What the runtime needs at start-up; goes into the stub and the manifest."""
    if staged is None:
        return {}
    pure = [dist for dist in staged.distributions if not dist.native]
    natives = [dist for dist in staged.distributions if dist.native]
    config: dict[str, Any] = {}
    if pure or staged.loose:
        config["site"] = SITE_PACKAGES
        config["dists"] = [[d.name, d.version, d.dist_info] for d in pure]
        top_level = [rel for d in pure for rel in d.files] + staged.loose
        config["pth"] = sorted(rel for rel in top_level if "/" not in rel and rel.endswith(".pth"))
    if natives:
        config["native"] = [_native_entry(staged.root, dist) for dist in natives]
        for entry, dist in zip(config["native"], natives, strict=True):
            if _normalize(dist.name) in optional:
                entry["optional"] = True
                entry["top"] = _top_level_names(dist)
    return config


def _top_level_names(dist: Distribution) -> list[str]:
    """The importable names a distribution provides (packages and modules at its top)."""
    names = set()
    for rel in dist.files:
        first, _, rest = rel.partition("/")
        if rest:
            if not first.endswith((".dist-info", ".data", ".libs")):
                names.add(first)
        elif first.endswith((".py", ".so", ".pyd")):
            names.add(first.split(".")[0])
    return sorted(name for name in names if name.isidentifier())


def _native_entry(root: Path, dist: Distribution) -> dict[str, Any]:
    prefix = f"{NATIVE_FOLDER}/{dist.name}-{dist.version}/"
    digest = hashlib.sha256(_bytecode_tag().encode())
    for rel in dist.files:
        digest.update(f"{rel}\0{hashlib.sha256((root / rel).read_bytes()).hexdigest()}\n".encode())
    return {
        "name": dist.name,
        "version": dist.version,
        "key": digest.hexdigest(),
        "prefix": prefix,
        "tags": list(dist.tags),
    }


def _cached_pyc(rel: str) -> str:
    """Where the import system looks for *rel*'s bytecode on disk (``__pycache__``)."""
    folder, _, name = rel.rpartition("/")
    cached = f"__pycache__/{name[:-3]}.{_bytecode_tag()}.pyc"
    return f"{folder}/{cached}" if folder else cached


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
    for item in plan.files:
        name = APP_MAIN_MODULE + ".py" if item.name == STUB_NAME else item.name
        mode = EXEC_MODE if item.executable else FILE_MODE
        jobs.append(
            Job(name, item.path, None, mode, do_compile and name.endswith(".py"), item.size)
        )
    staged = plan.staged
    if staged is not None:
        native = {dist.name for dist in staged.distributions if dist.native}
        for dist in staged.distributions:
            folder = (
                f"{NATIVE_FOLDER}/{dist.name}-{dist.version}"
                if dist.name in native
                else SITE_PACKAGES
            )
            for rel in dist.files:
                path = staged.root / rel
                st = path.stat()
                mode = EXEC_MODE if st.st_mode & 0o111 else FILE_MODE
                compiles = do_compile and rel.endswith(".py")
                pyc = None
                if compiles and dist.name in native:
                    pyc = f"{folder}/{_cached_pyc(rel)}"
                jobs.append(Job(f"{folder}/{rel}", path, None, mode, compiles, st.st_size, pyc))
        for rel in staged.loose:
            path = staged.root / rel
            compiles = do_compile and rel.endswith(".py")
            jobs.append(
                Job(f"{SITE_PACKAGES}/{rel}", path, None, FILE_MODE, compiles, path.stat().st_size)
            )
    runtime_dir = Path(_runtime.__file__).parent
    for path in sorted(runtime_dir.glob("*.py")):
        name = f"{RUNTIME_PACKAGE}/{path.name}"
        jobs.append(Job(name, path, None, FILE_MODE, do_compile, path.stat().st_size))
    stub = plan.stub.encode("utf-8")
    jobs.append(Job(STUB_NAME, None, stub, FILE_MODE, do_compile, len(stub)))
    jobs.sort(key=lambda job: job.name)
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
            digest = writer.finish(lambda d: format_comment(_comment_fields(d, options)))
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


def _comment_fields(digest: str, options: Options) -> dict[str, str]:
    fields = {"sha256": digest}
    if options.sign_key is not None:
        from .signing import sign_digest

        fields["ed25519"] = sign_digest(options.sign_key, digest)
    return fields


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
        "distributions": [
            {"name": d.name, "version": d.version, "native": d.native}
            for d in (plan.staged.distributions if plan.staged else [])
        ],
        "runtime": plan.runtime,
        "members": dict(sorted(entries.items())),
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")
    build_id = _sha256(canonical)[:16]
    body["build_id"] = build_id
    return json.dumps(body, sort_keys=True, indent=1).encode("utf-8") + b"\n", build_id


def _bytecode_tag() -> str:
    return sys.implementation.cache_tag or f"{sys.implementation.name}-unknown"


def _sha256(data: bytes) -> str:
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
