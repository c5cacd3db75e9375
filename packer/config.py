"""Build options, defined once: each is a field of :class:`Settings` whose metadata gives its
command-line flags, ``[tool.packer]`` key, kind and help. The API's keywords, the config-file
reader, the click options (``packer/cli.py``) and the README's table all come from it.
(Most of its length is that table, one entry an option.)
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError, EntryPointError, SourceError, read_input

__all__ = [
    "DEFAULT_INTERPRETER",
    "DEFAULT_LEVEL",
    "LOCK_OPTIONS",
    "Option",
    "Settings",
    "load_config",
    "options",
    "options_table",
    "project_requires_python",
    "read_toml",
    "resolve",
    "settings_for",
]

DEFAULT_INTERPRETER = "/usr/bin/env python3"
#: The build options that decide what is resolved: the ones ``packer lock`` takes.
LOCK_OPTIONS = frozenset({
    "requirements", "with_packages", "extras", "targets", "project", "find_links",
    "index_url", "extra_index_urls", "no_index",
})  # fmt: skip
#: Chosen by measurement (docs/format.md, "Compression"): archives 2.9 times smaller than
#: stored ones and within 1% of level 9, built faster than at level 9. Stored members start
#: sooner on import-heavy apps; --no-compress is there for those.
DEFAULT_LEVEL = 6


@dataclass(frozen=True)
class Option:
    """How one setting is given: flags, ``[tool.packer]`` key, kind, help."""

    name: str
    flags: tuple[str, ...]
    help: str
    #: value (one), multiple (repeatable), switch (--x/--no-x), flag (--x only)
    kind: str
    #: text, int or path (a path in a config file is relative to the file)
    type: str
    default: Any
    metavar: str | None
    shown_default: str | None
    int_range: tuple[int | None, int | None] | None
    #: The ``[tool.packer]`` key: the long flag's name (the positive one of a switch).
    key: str


def _option(
    *flags: str,
    help: str,
    kind: str = "value",
    type: str = "text",
    default: Any = None,
    metavar: str | None = None,
    shown: str | None = None,
    int_range: tuple[int | None, int | None] | None = None,
    key: str | None = None,
) -> Any:
    long = next(f for f in flags if f.startswith("--"))
    meta = {"flags": flags, "help": help, "kind": kind, "type": type, "metavar": metavar,
            "shown": shown, "int_range": int_range,
            "key": key or long.split("/")[0][2:]}  # fmt: skip
    if kind == "multiple":
        return field(default=(), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Settings:
    """Every build option, resolved: given, else from the config file, else the default.

    Adding a build option is adding a field here; ``None`` is left only where absence is a
    value of its own (no entry point given, no key to sign with).
    """

    output: Path | None = _option(  # noqa: RUF009 (it is a dataclasses.field)
        "-o", "--output", type="path", metavar="PATH",
        help="Archive to write.", shown="SOURCE.pyz beside SOURCE",
    )  # fmt: skip
    entry: str | None = _option(
        "-m", "--entry", metavar="MOD[:FUNC]", shown="SOURCE/__main__.py",
        help="Entry point: 'pkg.mod:func' (exit status from its return) or 'pkg.mod' "
             "(run as python -m would).",
    )  # fmt: skip
    python: str = _option(
        "-p", "--python", metavar="INTERP", default=DEFAULT_INTERPRETER,
        help="Interpreter for the shebang line.",
    )  # fmt: skip
    shebang: bool = _option(
        "--shebang/--no-shebang", kind="switch", default=True,
        help="Write the shebang line and make the archive executable.",
    )  # fmt: skip
    requires_python: str | None = _option(
        "--requires-python", metavar="SPEC", shown="SOURCE/pyproject.toml's requires-python",
        help="Python versions the archive accepts, checked first at start-up.",
    )  # fmt: skip
    compile: bool = _option(
        "--compile/--no-compile", kind="switch", default=False,
        help="Store bytecode beside each module, for each target Python installed here "
        "(otherwise modules compile at their first import, into the runtime cache).",
    )  # fmt: skip
    compress: bool = _option(
        "--compress/--no-compress", kind="switch", default=True,
        help="Deflate members (incompressible ones are stored).",
    )  # fmt: skip
    compression_level: int = _option(
        "--compression-level", type="int", metavar="0-9", default=DEFAULT_LEVEL,
        int_range=(0, 9), help="Deflate level.",
    )  # fmt: skip
    include: tuple[str, ...] = _option(
        "--include", kind="multiple", metavar="GLOB",
        help="Pack only files matching a gitignore-style GLOB (repeatable).",
    )  # fmt: skip
    exclude: tuple[str, ...] = _option(
        "--exclude", kind="multiple", metavar="GLOB",
        help="Leave out files and folders matching a gitignore-style GLOB (repeatable).",
    )  # fmt: skip
    gitignore: bool = _option(
        "--gitignore/--no-gitignore", kind="switch", default=True,
        help="Leave out what .gitignore files ignore.",
    )  # fmt: skip
    follow_symlinks: bool = _option(
        "--follow-symlinks", kind="flag", default=False,
        help="Pack what symlinks leading outside SOURCE point to, instead of refusing.",
    )  # fmt: skip
    jobs: int | None = _option(
        "-j", "--jobs", type="int", metavar="N", int_range=(1, None), shown="one per CPU",
        help="Worker processes for big builds; the output is the same for any N.",
    )  # fmt: skip
    requirements: tuple[Path, ...] = _option(
        "-r", "--requirement", kind="multiple", type="path", metavar="FILE", key="requirements",
        help="Bundle what this requirements file names (repeatable); installed with pip now.",
    )  # fmt: skip
    with_packages: tuple[str, ...] = _option(
        "--with", kind="multiple", metavar="SPEC",
        help="Bundle this requirement, e.g. 'click>=8' (repeatable).",
    )  # fmt: skip
    console_script: str | None = _option(
        "--console-script", metavar="NAME",
        help="Entry point: a console script that a bundled distribution declares.",
    )  # fmt: skip
    lock: Path | None = _option(  # noqa: RUF009 (it is a dataclasses.field)
        "--lock", type="path", metavar="FILE",
        help="Install exactly what this lock file (see packer lock) pins, every file checked "
             "against its hashes, and nothing else.",
    )  # fmt: skip
    targets: tuple[str, ...] = _option(
        "--target", kind="multiple", metavar="PY[:PLATFORM]", key="targets",
        shown="the building interpreter",
        help="A CPython version and platform to resolve and install for, e.g. 3.12 or "
             "3.13:macos-arm64 (repeatable): the archive holds what each needs and picks "
             "the one that fits at start. Platforms: linux-x86_64, linux-aarch64, "
             "macos-arm64, macos-x86_64, windows-amd64, windows-arm64 (default: this one).",
    )  # fmt: skip
    project: bool | None = _option(
        "--project/--no-project", kind="switch",
        shown="when SOURCE has project metadata",
        help="Build SOURCE as a Python project: its wheel by its own build backend, with its "
             "dependencies, its .dist-info and its [project.scripts] entry point. "
             "--no-project packs the folder's files as they are. Project metadata is a "
             "pyproject.toml with a [project] or [build-system] table, a setup.py or a "
             "setup.cfg.",
    )  # fmt: skip
    extras: tuple[str, ...] = _option(
        "--extra", kind="multiple", metavar="NAME", key="extras",
        help="Bundle this optional-dependency group of the project too (repeatable).",
    )  # fmt: skip
    optional_native: tuple[str, ...] = _option(
        "--optional-native", kind="multiple", metavar="NAME",
        help="A bundled distribution with native code the application can run without "
             "(repeatable): on an interpreter its code does not fit, importing it raises "
             "ImportError instead of the archive refusing to start.",
    )  # fmt: skip
    extract: tuple[str, ...] = _option(
        "--extract", kind="multiple", metavar="NAME",
        help="Run this bundled distribution from the cache, extracted, as native code is "
             "(repeatable): for code that reads its own files by path in ways the build "
             "did not see. The build extracts those whose code shows it by itself.",
    )  # fmt: skip
    no_extract: tuple[str, ...] = _option(
        "--no-extract", kind="multiple", metavar="NAME",
        help="Import this bundled distribution from inside the archive even though its code "
             "seems to read its own files by path (repeatable).",
    )  # fmt: skip
    extract_all: bool = _option(
        "--extract-all", kind="flag", default=False,
        help="Run every bundled distribution from the cache, extracted (for programs that "
             "need a real file tree for everything).",
    )  # fmt: skip
    find_links: tuple[str, ...] = _option(
        "--find-links", kind="multiple", type="links", metavar="URL|DIR",
        help="Passed to pip (repeatable).",
    )  # fmt: skip
    index_url: str | None = _option("--index-url", metavar="URL", help="Passed to pip.")
    extra_index_urls: tuple[str, ...] = _option(
        "--extra-index-url", kind="multiple", metavar="URL", help="Passed to pip (repeatable).",
    )  # fmt: skip
    no_index: bool = _option(
        "--no-index", kind="flag", default=False, help="Passed to pip: only --find-links.",
    )  # fmt: skip
    sign_key: Path | None = _option(  # noqa: RUF009 (it is a dataclasses.field)
        "--sign-key", type="path", metavar="KEY",
        help="Sign the archive with this Ed25519 private key (see packer keygen).",
    )  # fmt: skip
    verify_on_start: bool = _option(
        "--verify-on-start", kind="flag", default=False,
        help="The archive checks its digest (and, with --sign-key, its signature) before "
             "running anything.",
    )  # fmt: skip
    interpreter: bool = _option(
        "--interpreter", kind="flag", default=False,
        help="No entry point: the archive runs as a Python in its own environment (-c CODE, "
             "-m MODULE, a script, a REPL), as PACKER_INTERPRETER=1 makes any archive do; "
             "for cluster workers and tools run with the archive's packages.",
    )  # fmt: skip
    inherit_path: bool = _option(
        "--inherit-path", kind="flag", default=False,
        help="Let the archive import what is installed beside the interpreter running it "
             "(its site-packages and user site, after the archive's own), for plugins "
             "installed there. By default it sees only itself, PYTHONPATH and the standard "
             "library. PACKER_INHERIT_PATH=1 (or 0) decides at run time.",
    )  # fmt: skip
    export_path: bool = _option(
        "--export-path", kind="flag", default=False,
        help="The archive puts its import path first in PYTHONPATH, so that a child "
             "process of sys.executable imports what it bundles. PACKER_EXPORT_PATH=1 (or "
             "0) decides at run time.",
    )  # fmt: skip


def options() -> Iterator[Option]:
    """Every option, in the order of the command line's help."""
    for f in dataclasses.fields(Settings):
        meta = f.metadata
        yield Option(
            f.name, meta["flags"], meta["help"], meta["kind"], meta["type"], f.default,
            meta["metavar"], meta["shown"], meta["int_range"], meta["key"],
        )  # fmt: skip


_BY_KEY = {option.key: option for option in options()}
_BY_NAME = {option.name: option for option in options()}


def _check(option: Option, value: Any, where: str, base: Path | None) -> Any:
    """*value* for *option*, as the settings hold it; ConfigError naming *where* if it is not
    of the option's kind. Paths are made absolute (from *base*, else the current folder)."""

    def fail(expected: str) -> ConfigError:
        return ConfigError(f"{where}: {option.key} must be {expected}, not {value!r}")

    def path(text: str) -> Any:
        if option.type == "links" and "://" in text:
            return text  # a URL stays as it is
        resolved = (base / text) if base is not None else Path(text)
        absolute = resolved.absolute()
        return absolute if option.type == "path" else str(absolute)

    if option.kind in ("switch", "flag"):
        if not isinstance(value, bool):
            raise fail("true or false")
        return value
    if option.kind == "multiple":
        if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
            raise fail("a list of strings")
        items = list(value)
        if not all(isinstance(item, str | Path) for item in items):
            raise fail("a list of strings")
        if option.type in ("path", "links"):
            return tuple(path(str(item)) for item in items)
        return tuple(str(item) for item in items)
    if option.type == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail("an integer")
        low, high = option.int_range or (None, None)
        if (low is not None and value < low) or (high is not None and value > high):
            span = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise ConfigError(f"{where}: {option.key} must be {span}, not {value}")
        return value
    if not isinstance(value, str | Path):
        raise fail("a string")
    return path(str(value)) if option.type == "path" else str(value)


def given(values: Mapping[str, Any], where: str = "build()") -> dict[str, Any]:
    """The options a caller gave (keyword names; None means not given), checked."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        option = _BY_NAME.get(name)
        if option is None:
            raise TypeError(f"{where} got an unexpected keyword argument {name!r}")
        if value is None:
            continue
        if option.kind == "multiple" and not isinstance(value, list | tuple):
            value = list(value)
        out[name] = _check(option, value, where, None)
    return out


def resolve(*layers: Mapping[str, Any]) -> Settings:
    """Settings from *layers* of given options, the first that gives a value winning."""
    values: dict[str, Any] = {}
    for layer in reversed(layers):
        values.update(layer)
    return Settings(**values)


def load_config(file: Path, *, table_required: bool = False) -> dict[str, Any]:
    """The build options *file* gives, by setting name.

    A ``pyproject.toml`` (or any file with a ``[tool]`` table) is read from ``[tool.packer]``;
    any other file holds the keys at its top level. Relative paths in it are relative to the
    file's folder. With *table_required* False a pyproject without the table gives none.
    """
    data = read_toml(file)
    table: Any
    if "tool" in data or file.name == "pyproject.toml":
        tool = data.get("tool", {})
        table = tool.get("packer") if isinstance(tool, dict) else None
        if table is None:
            if table_required:
                raise ConfigError(f"{file}: has no [tool.packer] table")
            return {}
        where = f"{file}: [tool.packer]"
    else:
        table, where = data, str(file)
    if not isinstance(table, dict):
        raise ConfigError(f"{where} is not a table")
    values: dict[str, Any] = {}
    for key, value in table.items():
        option = _BY_KEY.get(key)
        if option is None:
            known = ", ".join(sorted(_BY_KEY))
            raise ConfigError(f"{where}: unknown key {key!r} (known keys: {known})")
        values[option.name] = _check(option, value, where, file.parent)
    return values


def options_table() -> str:
    """The README's table of build options (a test keeps the two the same)."""
    rows = ["| flag | `[tool.packer]` key | default | what it does |", "|---|---|---|---|"]
    for option in options():
        if option.kind == "switch":
            flag = " / ".join(f"`{f}`" for f in option.flags[0].split("/"))
        else:
            value = f" {option.metavar}" if option.metavar else ""
            flag = ", ".join(f"`{f}{value}`" for f in option.flags)
        default = option.shown_default
        if default is None:
            if option.kind in ("switch", "flag"):
                default = "yes" if option.default else "no"
            elif option.kind == "multiple":
                default = "none"
            else:
                default = "-" if option.default is None else f"`{option.default}`"
        else:
            default = default.replace("_", "\\_")
        key = f"`{option.key}`" + (" (list)" if option.kind == "multiple" else "")
        cells = (flag, key, default, option.help)
        rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(rows) + "\n"


def project_requires_python(file: Path) -> str | None:
    """``[project] requires-python`` of a pyproject.toml, if it has one."""
    project = read_toml(file).get("project")
    if isinstance(project, dict):
        value = project.get("requires-python")
        if isinstance(value, str):
            return value
    return None


def read_toml(file: Path) -> dict[str, Any]:
    """A TOML file's tables; ConfigError, in one line, if it cannot be read or parsed."""
    data = read_input(file, "TOML file")
    try:
        return tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: invalid TOML: {exc}") from None


def settings_for(src: Path | None, given: dict[str, Any], config: Path | None) -> Settings:
    """The settings for a build of *src*: *given*, else the config file (or SOURCE's
    ``[tool.packer]``), else the project's requires-python, else the defaults."""
    pyproject = src / "pyproject.toml" if src is not None else None
    from_file: dict[str, Any] = {}
    if config is not None:
        from_file = load_config(config, table_required=config.name == "pyproject.toml")
    elif pyproject is not None and pyproject.is_file():
        from_file = load_config(pyproject)
    from_project: dict[str, Any] = {}
    if pyproject is not None and pyproject.is_file():
        from_project = {"requires_python": project_requires_python(pyproject)}
        from_project = {k: v for k, v in from_project.items() if v is not None}
    options = resolve(given, from_file, from_project)
    if src is None and not (options.requirements or options.with_packages):
        raise SourceError("nothing to pack: give a source folder, or dependencies to bundle")
    if options.console_script is not None and options.entry is not None:
        raise EntryPointError("give an entry point or a console script, not both")
    return options
