"""Build options: their defaults, and ``[tool.packer]`` / ``--config`` files that set them."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = [
    "DEFAULT_INTERPRETER",
    "DEFAULT_LEVEL",
    "Options",
    "load_config",
    "project_requires_python",
]

DEFAULT_INTERPRETER = "/usr/bin/env python3"
#: Chosen by measurement (docs/format.md, "Compression"): archives 2.9 times smaller than
#: stored ones and within 1% of level 9, built faster than at level 9. Stored members start
#: sooner on import-heavy apps; --no-compress is there for those.
DEFAULT_LEVEL = 6


@dataclass(frozen=True)
class Options:
    """Every build option, as the CLI, the API and ``[tool.packer]`` name them.

    None means "not given here": the next source (config file, then default) decides.
    """

    output: Path | None = None
    entry: str | None = None
    python: str | None = None
    shebang: bool | None = None
    requires_python: str | None = None
    compile: bool | None = None
    compress: bool | None = None
    compression_level: int | None = None
    include: tuple[str, ...] | None = None
    exclude: tuple[str, ...] | None = None
    gitignore: bool | None = None
    follow_symlinks: bool | None = None
    jobs: int | None = None
    requirements: tuple[Path, ...] | None = None
    with_packages: tuple[str, ...] | None = None
    console_script: str | None = None
    optional_native: tuple[str, ...] | None = None
    find_links: tuple[str, ...] | None = None
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] | None = None
    no_index: bool | None = None
    sign_key: Path | None = None
    verify_on_start: bool | None = None

    def merged_over(self, base: Options) -> Options:
        """These options, with anything not given taken from *base*."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for name, value in values.items():
            if value is None:
                values[name] = getattr(base, name)
        return Options(**values)


_KEYS: dict[str, type] = {
    "output": str,
    "entry": str,
    "python": str,
    "shebang": bool,
    "requires-python": str,
    "compile": bool,
    "compress": bool,
    "compression-level": int,
    "include": list,
    "exclude": list,
    "gitignore": bool,
    "follow-symlinks": bool,
    "jobs": int,
    "requirements": list,
    "with": list,
    "console-script": str,
    "optional-native": list,
    "find-links": list,
    "index-url": str,
    "extra-index-url": list,
    "no-index": bool,
    "sign-key": str,
    "verify-on-start": bool,
}


#: Keys whose Options field is not simply the key with dashes as underscores.
_FIELDS = {"with": "with_packages", "extra-index-url": "extra_index_urls"}


def load_config(file: Path, *, table_required: bool = False) -> Options:
    """Read build options from *file*.

    A ``pyproject.toml`` (or any file with a ``[tool]`` table) is read from ``[tool.packer]``;
    any other file holds the keys at its top level. Relative paths in it (``output``) are
    relative to the file's folder. With *table_required* False a pyproject without the table
    gives empty options.
    """
    data = _read_toml(file)
    table: Any
    if "tool" in data or file.name == "pyproject.toml":
        tool = data.get("tool", {})
        table = tool.get("packer") if isinstance(tool, dict) else None
        if table is None:
            if table_required:
                raise ConfigError(f"{file}: has no [tool.packer] table")
            return Options()
        where = f"{file}: [tool.packer]"
    else:
        table, where = data, str(file)
    if not isinstance(table, dict):
        raise ConfigError(f"{where} is not a table")
    values: dict[str, Any] = {}
    for key, value in table.items():
        kind = _KEYS.get(key)
        if kind is None:
            known = ", ".join(sorted(_KEYS))
            raise ConfigError(f"{where}: unknown key {key!r} (known keys: {known})")
        if (isinstance(value, bool) and kind is int) or not isinstance(value, kind):
            raise ConfigError(f"{where}: {key} must be {_describe(kind)}, not {value!r}")
        if isinstance(value, list):
            if not all(isinstance(item, str) for item in value):
                raise ConfigError(f"{where}: {key} must be a list of strings")
            value = tuple(value)
        if key in ("output", "sign-key"):
            value = (file.parent / value).absolute()
        elif key == "requirements":
            value = tuple((file.parent / item).absolute() for item in value)
        elif key == "find-links":
            # Local folders are relative to the file; URLs stay as they are.
            value = tuple(
                item if "://" in item else str((file.parent / item).absolute()) for item in value
            )
        values[_FIELDS.get(key, key.replace("-", "_"))] = value
    return Options(**values)


def project_requires_python(file: Path) -> str | None:
    """``[project] requires-python`` of a pyproject.toml, if it has one."""
    project = _read_toml(file).get("project")
    if isinstance(project, dict):
        value = project.get("requires-python")
        if isinstance(value, str):
            return value
    return None


def _read_toml(file: Path) -> dict[str, Any]:
    try:
        with file.open("rb") as fp:
            return tomllib.load(fp)
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{file}: is a folder, not a TOML file") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: invalid TOML: {exc}") from None


def _describe(kind: type) -> str:
    names = {str: "a string", bool: "true or false", int: "an integer", list: "a list"}
    return names.get(kind, kind.__name__)
