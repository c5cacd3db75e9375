"""Build an archive: select files, compile bytecode, write the stub, manifest and digest."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import _runtime
from ._runtime.environment import _normalize
from ._runtime.format import (
    APP_MAIN_MODULE,
    FORMAT_VERSION,
    MANIFEST_NAME,
    MAX16,
    NATIVE_FOLDER,
    RESERVED_PREFIXES,
    RUNTIME_PACKAGE,
    SITE_PACKAGES,
    STUB_NAME,
    Manifest,
    NativeDist,
    RuntimeConfig,
    native_key,
)
from ._runtime.gate import python_supported
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
from .output import atomic_output, new_file_mode
from .producer import Job, produce, produce_in_order
from .pyversion import Clause, parse_requires_python
from .selection import Patterns, Selection, SourceFile, select_files
from .stub import render_stub
from .zipwriter import (
    EXEC_MODE,
    FILE_MODE,
    Member,
    ZipWriter,
    directory,
    prepare,
    shebang_line,
)

if TYPE_CHECKING:
    from .signing import Signer

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
    sign = _signer(options)
    _source_date_epoch()  # checked before any work is done
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
        names, stored, digest, build_id = _write(plan, out, options, progress, sign)
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
    clauses: tuple[Clause, ...]
    runtime: RuntimeConfig
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
        if real_out.exists() and not _is_sealed(real_out):
            raise BuildError(
                f"{out}: exists inside the source folder and is not an archive packer wrote; "
                "not overwritten (remove it, or write the archive elsewhere)"
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
    runtime.verify = bool(options.verify_on_start)
    return _Plan(files, staged, entry, entry_text, requires, clauses, runtime, warnings)


def _optional_native(options: Options, staged: Staged | None) -> frozenset[str]:
    """The bundled distributions named by ``optional_native``; BuildError for any other name."""
    wanted = {_normalize(name): name for name in options.optional_native or ()}
    bundled = {_normalize(dist.name) for dist in (staged.distributions if staged else [])}
    unknown = [given for key, given in wanted.items() if key not in bundled]
    if unknown:
        raise BuildError(f"--optional-native {unknown[0]}: no bundled distribution has that name")
    return frozenset(wanted)


def _runtime_config(staged: Staged | None, optional: frozenset[str] = frozenset()) -> RuntimeConfig:
    """What the runtime needs at start-up; goes into the stub and the manifest.

    Native distributions get their cache keys once their members are written (see
    :func:`_with_native_keys`): a key is derived from the hashes the manifest records.
    """
    config = RuntimeConfig()
    if staged is None:
        return config
    pure = [dist for dist in staged.distributions if not dist.native]
    natives = [dist for dist in staged.distributions if dist.native]
    if pure or staged.loose:
        config.site = SITE_PACKAGES
        config.dists = [(d.name, d.version, d.dist_info) for d in pure]
        top_level = [rel for d in pure for rel in d.files] + staged.loose
        config.pth = sorted(rel for rel in top_level if "/" not in rel and rel.endswith(".pth"))
    for dist in natives:
        is_optional = _normalize(dist.name) in optional
        config.native.append(
            NativeDist(
                dist.name,
                dist.version,
                "0" * 64,
                f"{NATIVE_FOLDER}/{dist.name}-{dist.version}/",
                dist.tags,
                optional=is_optional,
                top=_top_level_names(dist) if is_optional else (),
            )
        )
    return config


def _with_native_keys(config: RuntimeConfig, members: dict[str, tuple[str, int]]) -> RuntimeConfig:
    """*config* with each native distribution's key derived from its written members."""
    for dist in config.native:
        dist.key = native_key(dist.prefix, members)
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


def _cached_pyc(rel: str) -> str:
    """Where the import system looks for *rel*'s bytecode on disk (``__pycache__``)."""
    folder, _, name = rel.rpartition("/")
    cached = f"__pycache__/{name[:-3]}.{_bytecode_tag()}.pyc"
    return f"{folder}/{cached}" if folder else cached


def _is_sealed(path: Path) -> bool:
    """Whether *path* ends with a packer seal (an archive an earlier build wrote)."""
    from ._runtime.format import END, SEAL_SIZE, parse_seal

    try:
        with path.open("rb") as fp:
            fp.seek(0, os.SEEK_END)
            if fp.tell() < END.size + SEAL_SIZE:
                return False
            fp.seek(-SEAL_SIZE, os.SEEK_END)
            seal, _problem = parse_seal(fp.read())
    except OSError:
        return False
    return seal is not None


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
    jobs.sort(key=lambda job: job.name)
    return jobs


def _folders(names: Iterable[str]) -> list[str]:
    """The folder entries worth writing: folders that hold no ``__init__.py``.

    zipimport on Python 3.9-3.12 finds a namespace package only through its folder entry;
    a regular package is found through its ``__init__.py``, so its entry would be dead weight
    (and zip entries are a budget: 65,535 at most where zip64 cannot be read).
    """
    present = set(names)
    folders = {
        "/".join(parts[: i + 1]) + "/"
        for parts in (name.split("/") for name in present)
        for i in range(len(parts) - 1)
    }
    return sorted(f for f in folders if f + "__init__.py" not in present)


def _planned_names(jobs: list[Job]) -> list[str]:
    """Every member name the build will certainly write (bytecode aside)."""
    return [job.name for job in jobs] + [STUB_NAME, MANIFEST_NAME]


def _check_entry_count(count: int, clauses: tuple[Clause, ...], out: Path) -> None:
    """Refuse more zip entries than the interpreters the archive accepts can open."""
    if count <= MAX16 - 1:
        return
    old = [
        f"3.{minor}"
        for minor in range(9, 13)
        if any(python_supported(list(c.as_literal() for c in clauses), (3, minor, patch))
               for patch in (0, 99))
    ]  # fmt: skip
    if old:
        raise BuildError(
            f"{out.name}: {count:,} zip entries, more than the {MAX16 - 1:,} that Python "
            f"{old[0]}-{old[-1]} can open (zipimport there reads no zip64); pack fewer files, "
            "or accept only Python 3.13 and newer (--requires-python '>=3.13')"
        )


def _write(
    plan: _Plan,
    out: Path,
    options: Options,
    progress: Progress | None,
    sign: Signer | None,
) -> tuple[list[str], int, str, str]:
    level = (
        None
        if options.compress is False
        else (options.compression_level if options.compression_level is not None else DEFAULT_LEVEL)
    )
    epoch = _source_date_epoch()
    interpreter = options.python if options.python is not None else DEFAULT_INTERPRETER
    with_shebang = options.shebang is not False
    prefix = shebang_line(interpreter) if with_shebang else b""
    jobs = _jobs(plan, options)
    do_compile = options.compile is not False
    planned = _planned_names(jobs)
    _check_entry_count(len(planned) + len(_folders(planned)), plan.clauses, out)
    warnings = plan.warnings
    with atomic_output(out, new_file_mode(with_shebang)) as fp:
        writer = ZipWriter(fp, prefix, epoch)
        entries: dict[str, tuple[str, int]] = {}
        stored = 0

        def add(member: Member) -> None:
            nonlocal stored
            writer.add(member)
            entries[member.name] = (member.sha256, member.size)
            stored += member.size

        for done, (job, members) in enumerate(
            produce_in_order(jobs, level, workers=options.jobs), start=1
        ):
            if job.compile and len(members) == 1:
                warnings.append(f"{job.name}: not compiled (syntax error); shipped as source")
            for member in members:
                add(member)
            if progress is not None:
                progress(done, len(jobs))
        # The stub goes last but for the manifest: it carries the native cache keys, which
        # derive from the hashes of the members just written.
        runtime = _with_native_keys(plan.runtime, entries)
        if sign is not None and runtime.verify:
            # Built to check itself and signed: the stub requires this key's signature.
            runtime.signed_by = sign.public
        stub = render_stub(
            plan.entry.kind, plan.entry.value, plan.requires_python, plan.clauses, runtime
        ).encode("utf-8")
        # An archive that checks itself at start runs its stub from source, stored: a flipped
        # bit then cannot reach marshal or zlib before the check.
        checked = runtime.verify
        stub_job = Job(STUB_NAME, None, stub, FILE_MODE, do_compile and not checked, len(stub))
        for member in produce(stub_job, None if checked else level):
            add(member)
        for folder in _folders([*entries, MANIFEST_NAME]):
            writer.add(directory(folder))
        _check_entry_count(writer.count + 1, plan.clauses, out)
        manifest = _manifest(plan, options, interpreter if with_shebang else None, epoch,
                             entries, runtime)  # fmt: skip
        manifest_member = prepare(MANIFEST_NAME, manifest.to_bytes(), FILE_MODE, level)
        writer.add(manifest_member)
        stored += manifest_member.size
        digest = writer.finish(sign)
    names = sorted([*entries, MANIFEST_NAME])
    return names, stored, digest, manifest.build_id


def _signer(options: Options) -> Signer | None:
    """Signs a digest with the build's key, loaded (and so checked) before anything is built."""
    if options.sign_key is None:
        return None
    from .signing import load_signer

    return load_signer(options.sign_key)


def _manifest(
    plan: _Plan,
    options: Options,
    interpreter: str | None,
    epoch: int,
    members: dict[str, tuple[str, int]],
    runtime: RuntimeConfig,
) -> Manifest:
    given_epoch = os.environ.get("SOURCE_DATE_EPOCH")
    return Manifest(
        format=FORMAT_VERSION,
        packer_version=__version__,
        entry=(plan.entry.kind, plan.entry_text),
        interpreter=interpreter,
        requires_python=plan.requires_python,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch)) if given_epoch else None,
        bytecode=_bytecode_tag() if options.compile is not False else None,
        distributions=[
            (d.name, d.version, d.native)
            for d in (plan.staged.distributions if plan.staged else [])
        ],
        runtime=runtime,
        members=dict(sorted(members.items())),
    )


def _bytecode_tag() -> str:
    return sys.implementation.cache_tag or f"{sys.implementation.name}-unknown"


#: SOURCE_DATE_EPOCH from 1970 to the end of 9999 (zip timestamps are clamped to 1980-2107).
_MAX_EPOCH = 253402300799


def _source_date_epoch() -> int:
    value = os.environ.get("SOURCE_DATE_EPOCH")
    if value is None or value == "":
        return 315532800  # 1980-01-01T00:00:00Z, the earliest time a zip can record
    try:
        epoch = int(value)
    except ValueError:
        epoch = -1
    if not 0 <= epoch <= _MAX_EPOCH:
        raise ConfigError(
            f"SOURCE_DATE_EPOCH must be whole seconds from 1970 to 9999, not {value!r}"
        )
    return epoch
