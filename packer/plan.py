"""Plan a build: everything decided and checked before a byte is written.

From the settings, the source folder and the staged dependencies, :func:`make_plan` gives a
frozen :class:`Plan` (files, entry point, runtime configuration, warnings), and
:func:`member_jobs` the members to produce. Nothing here writes; the builder does. (A little
over 350 lines: the checks of a plan are read best beside the plan they check.)
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from . import _runtime
from ._runtime.environment import normalize_name
from ._runtime.format import (
    APP_MAIN_MODULE,
    MANIFEST_NAME,
    MAX16,
    NATIVE_FOLDER,
    RESERVED_PREFIXES,
    RUNTIME_CONFIG_NAME,
    RUNTIME_PACKAGE,
    SITE_PACKAGES,
    STUB_NAME,
    VARIANTS_FOLDER,
    NativeDist,
    RuntimeConfig,
    Target,
    Variant,
)
from ._runtime.gate import python_supported
from .config import Settings
from .dependencies import Distribution, Staged
from .entry import INTERPRETER, EntryPoint, parse_entry
from .errors import BuildError, EntryPointError, SourceError
from .evidence import find_evidence
from .members import MemberJob
from .pyversion import Clause, parse_requires_python
from .selection import FileFilter, Selection, SourceFile, select_files
from .zipwriter import EXEC_MODE, FILE_MODE

__all__ = [
    "Plan",
    "bytecode_tag",
    "check_entry_count",
    "check_output",
    "folder_entries",
    "is_output",
    "make_plan",
    "member_jobs",
    "planned_names",
]


def check_output(src: Path | None, options: Settings) -> Path:
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


@dataclass(frozen=True)
class Plan:
    """What the archive will hold, decided and checked."""

    files: tuple[SourceFile, ...]
    staged: Staged | None
    entry: EntryPoint
    requires_python: str | None
    #: Without native cache keys yet: those derive from the members once written.
    runtime: RuntimeConfig
    warnings: tuple[str, ...]

    @property
    def entry_text(self) -> str:
        """The entry point as the manifest records it."""
        return STUB_NAME if self.entry.value == APP_MAIN_MODULE else self.entry.value

    @property
    def clauses(self) -> tuple[Clause, ...]:
        return parse_requires_python(self.requires_python) if self.requires_python else ()


def _select(src: Path, out: Path, options: Settings) -> Selection:
    if not src.exists():
        raise SourceError(f"{src}: no such folder")
    if not src.is_dir():
        raise SourceError(f"{src}: not a folder")
    patterns = FileFilter(
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
        skip=lambda name, path: is_output(name, path, real_out),
    )
    for item in selection.files:
        if item.name.startswith(RESERVED_PREFIXES):
            raise SourceError(
                f"{src / item.name}: the name {item.name!r} is reserved for packer's own files"
            )
    return selection


def make_plan(src: Path | None, out: Path, options: Settings, staged: Staged | None) -> Plan:
    """Everything decided and checked before a byte is written."""
    warnings: list[str] = []
    files: list[SourceFile] = []
    if src is not None:
        selection = _select(src, out, options)
        files = selection.files
        warnings += selection.warnings
        found = find_evidence(src, [f.name for f in files if f.name.endswith(".py")])
        if found is not None:
            # A folder's files are the archive's own top level: nothing to extract them as.
            warnings.append(
                f"{found}: read this way, inside the archive it finds nothing; read package "
                "files with importlib.resources, or build the folder as a project "
                "(pyproject.toml), whose code is then extracted at run time"
            )
    by_name = {item.name: item.path for item in files}
    if staged is not None:
        for dist in staged.distributions:
            for rel in dist.files:
                by_name.setdefault(rel, (dist.root or staged.root) / rel)
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
            known = (
                sorted({n for d in staged.distributions for n in d.console_scripts})
                if staged
                else []
            )
            listed = f" (declared: {', '.join(known)})" if known else ""
            raise EntryPointError(
                f"console script {options.console_script!r}: no bundled distribution declares "
                f"it{listed}"
            )
        spec = target.split("[")[0].strip()  # drop any [extras]
    if options.interpreter:
        if spec is not None:
            raise EntryPointError(
                f"--interpreter builds an archive without an entry point; drop the entry "
                f"point ({spec})"
            )
        entry = EntryPoint(INTERPRETER, "")
    elif spec is not None:
        if has_main:
            raise EntryPointError(
                f"{src / STUB_NAME if src else STUB_NAME} exists and an entry point ({spec}) "
                f"was given: remove one (or --exclude {STUB_NAME})"
            )
        entry = parse_entry(spec)
        entry.check(read_member, where)
    elif has_main:
        entry = EntryPoint("module", APP_MAIN_MODULE)
    else:
        raise EntryPointError(
            f"{src or 'archive'}: no entry point: give --entry module:function (or module), "
            f"--console-script NAME, or add a {STUB_NAME}"
        )
    requires = options.requires_python
    if requires:
        parse_requires_python(requires)  # refused now, before anything is built
    _choose_extracted(options, staged)
    runtime = _runtime_config(staged, _optional_native(options, staged))
    runtime.verify = options.verify_on_start
    runtime.inherit_path = options.inherit_path
    runtime.export_path = options.export_path
    return Plan(tuple(files), staged, entry, requires, runtime, tuple(warnings))


def _choose_extracted(options: Settings, staged: Staged | None) -> None:
    """Mark the pure distributions to run from the cache: by the evidence in their code
    (:mod:`packer.evidence`), overruled by ``--extract``, ``--no-extract``, ``--extract-all``.
    BuildError for a name no bundled distribution has, or one given both ways."""
    dists = staged.distributions if staged is not None else []
    root = staged.root if staged is not None else Path()
    have = {normalize_name(d.name) for d in dists}
    yes = {normalize_name(n): n for n in options.extract or ()}
    no = {normalize_name(n): n for n in options.no_extract or ()}
    for option, names in (("--extract", yes), ("--no-extract", no)):
        unknown = sorted(set(names) - have)
        if unknown:
            raise BuildError(f"{option} {names[unknown[0]]}: no bundled distribution has that name")
    both = sorted(set(yes) & set(no))
    if both:
        raise BuildError(f"{yes[both[0]]}: given to both --extract and --no-extract")
    for dist in dists:
        key = normalize_name(dist.name)
        if dist.native:
            if key in no:
                raise BuildError(
                    f"--no-extract {no[key]}: it has native code, which cannot load from a zip"
                )
            continue
        if key in no:
            dist.extract = None
        elif key in yes:
            dist.extract = "--extract"
        elif options.extract_all:
            dist.extract = "--extract-all"
        else:
            found = find_evidence(dist.root or root, dist.files)
            dist.extract = str(found) if found is not None else None


def _optional_native(options: Settings, staged: Staged | None) -> frozenset[str]:
    """The bundled distributions named by ``optional_native``; BuildError for any other name."""
    wanted = {normalize_name(name): name for name in options.optional_native or ()}
    bundled = {normalize_name(dist.name) for dist in (staged.distributions if staged else [])}
    unknown = [given for key, given in wanted.items() if key not in bundled]
    if unknown:
        raise BuildError(f"--optional-native {unknown[0]}: no bundled distribution has that name")
    return frozenset(wanted)


def _runtime_config(staged: Staged | None, optional: frozenset[str] = frozenset()) -> RuntimeConfig:
    """What the runtime needs at start-up; goes into the stub and the manifest.

    Native distributions get their cache keys once their members are written (the builder
    derives each from the hashes the manifest records).
    """
    config = RuntimeConfig()
    if staged is None:
        return config
    config.targets = [
        Target(target.name, target.python, target.platform_tag) for target in staged.targets
    ]
    kept = [d for d in staged.distributions if not d.extracted]
    shared = [d for d in kept if _folder(d) == SITE_PACKAGES]
    variants = [d for d in kept if _folder(d) != SITE_PACKAGES]
    natives = [dist for dist in staged.distributions if dist.extracted]
    if shared or staged.loose:
        config.site = SITE_PACKAGES
        config.dists = [(d.name, d.version, d.dist_info) for d in shared]
        top_level = [rel for d in shared for rel in d.files] + staged.loose
        config.pth = sorted(rel for rel in top_level if "/" not in rel and rel.endswith(".pth"))
    for dist in variants:
        pth = sorted(rel for rel in dist.files if "/" not in rel and rel.endswith(".pth"))
        config.variants.append(
            Variant(_folder(dist), [(dist.name, dist.version, dist.dist_info)], dist.targets, pth)
        )
    for dist in natives:
        is_optional = normalize_name(dist.name) in optional
        config.native.append(
            NativeDist(
                dist.name,
                dist.version,
                "0" * 64,
                _folder(dist) + "/",
                dist.tags,
                optional=is_optional,
                top=_top_level_names(dist) if is_optional else (),
                targets=dist.targets,
            )
        )
    return config


def _folder(dist: Distribution) -> str:
    """The archive folder a bundled distribution's files go to."""
    own = f"{NATIVE_FOLDER}/{dist.name}-{dist.version}"
    if dist.prefix is None:
        return own if dist.extracted else SITE_PACKAGES
    if dist.extracted and dist.prefix == SITE_PACKAGES:
        return own  # pure, the same for every target, and extracted all the same
    if dist.extracted and dist.prefix.startswith(VARIANTS_FOLDER + "/"):
        return NATIVE_FOLDER + dist.prefix[len(VARIANTS_FOLDER) :]
    return dist.prefix


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
    cached = f"__pycache__/{name[:-3]}.{bytecode_tag()}.pyc"
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


def is_output(name: str, path: Path, out: Path) -> bool:
    """Whether a walked entry is the output, or a temporary file of a build writing it."""
    if name != out.name and not (name.startswith(f".{out.name}.") and name.endswith(".tmp")):
        return False  # cheap test first: resolving every path would double the walk's cost
    real = path.resolve()
    return real == out or (real.parent == out.parent and name != out.name)


def member_jobs(plan: Plan, options: Settings) -> list[MemberJob]:
    """The members to produce (compile, hash, compress), in name order; the stub and the
    manifest are made by the writer."""
    jobs: list[MemberJob] = []
    do_compile = options.compile
    for item in plan.files:
        name = APP_MAIN_MODULE + ".py" if item.name == STUB_NAME else item.name
        mode = EXEC_MODE if item.executable else FILE_MODE
        jobs.append(
            MemberJob(name, item.path, None, mode, do_compile and name.endswith(".py"), item.size)
        )
    staged = plan.staged
    if staged is not None:
        for dist in staged.distributions:
            folder = _folder(dist)
            root = dist.root or staged.root
            for rel in dist.files:
                path = root / rel
                st = path.stat()
                mode = EXEC_MODE if st.st_mode & 0o111 else FILE_MODE
                compiles = do_compile and rel.endswith(".py")
                pyc = None
                if compiles and dist.extracted:
                    pyc = f"{folder}/{_cached_pyc(rel)}"
                jobs.append(
                    MemberJob(f"{folder}/{rel}", path, None, mode, compiles, st.st_size, pyc,
                              dist.targets)
                )  # fmt: skip
        for rel in staged.loose:
            path = staged.root / rel
            compiles = do_compile and rel.endswith(".py")
            jobs.append(
                MemberJob(
                    f"{SITE_PACKAGES}/{rel}", path, None, FILE_MODE, compiles, path.stat().st_size
                )
            )
    runtime_dir = Path(_runtime.__file__).parent
    # The runtime keeps its bytecode under --no-compile too: zipimport loads it before
    # anything else could compile into the cache, so it would compile at every start.
    for path in sorted(runtime_dir.glob("*.py")):
        name = f"{RUNTIME_PACKAGE}/{path.name}"
        jobs.append(MemberJob(name, path, None, FILE_MODE, True, path.stat().st_size))
    jobs.sort(key=lambda job: job.name)
    return jobs


def folder_entries(names: Iterable[str]) -> list[str]:
    """The folder entries worth writing: folders that could be a namespace package.

    zipimport on Python 3.9-3.12 finds a namespace package only through its folder entry; a
    regular package is found through its ``__init__.py``, a folder with no Python below it is
    no package at all (``importlib.resources`` reads data folders without entries), and what
    is extracted to the cache is never imported from the zip. Each entry would be dead
    weight: zipimport reads every entry of the archive at every start (about 3 µs each), and
    entries are a budget (65,535 at most where zip64 cannot be read).
    """
    present = set(names)
    folders: set[str] = set()
    for name in present:
        if not name.endswith((".py", ".pyc")) or name.startswith(NATIVE_FOLDER + "/"):
            continue
        root = _path_entry(name)
        if root is None:
            continue  # packer's own folders: not on sys.path
        parts = name[len(root) :].split("/")
        folders.update(root + "/".join(parts[: i + 1]) + "/" for i in range(len(parts) - 1))
    return sorted(f for f in folders if f + "__init__.py" not in present)


def _path_entry(name: str) -> str | None:
    """The ``sys.path`` entry of the archive that member *name* is imported through, as a
    prefix of names (``""`` for the archive's top); None when it is on no path entry."""
    if name.startswith(SITE_PACKAGES + "/"):
        return SITE_PACKAGES + "/"
    if name.startswith(VARIANTS_FOLDER + "/"):
        folder = name[len(VARIANTS_FOLDER) + 1 :].partition("/")[0]
        return f"{VARIANTS_FOLDER}/{folder}/"
    return None if name.startswith("_packer/") else ""


def planned_names(jobs: list[MemberJob]) -> list[str]:
    """Every member name the build will certainly write (bytecode aside)."""
    return [job.name for job in jobs] + [STUB_NAME, RUNTIME_CONFIG_NAME, MANIFEST_NAME]


def check_entry_count(count: int, clauses: tuple[Clause, ...], out: Path) -> None:
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


def bytecode_tag() -> str:
    return sys.implementation.cache_tag or f"{sys.implementation.name}-unknown"
