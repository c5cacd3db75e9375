"""The ``packer`` command line: a thin click layer over the library."""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from . import __version__
from ._runtime import render
from ._runtime.commands import COMMANDS, Command
from ._runtime.format import Limits
from .errors import PackerError

__all__ = ["main"]

F = TypeVar("F", bound=Callable[..., Any])


class _Failure(click.ClickException):
    """An expected failure: ``packer: <message>`` on stderr, exit status 1."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.echo(f"packer: {render.printable(self.format_message())}", err=True)


def _fail(error: PackerError) -> click.ClickException:
    return _Failure(str(error))


@contextmanager
def _errors() -> Iterator[None]:
    """Turn packer's own errors into one line on stderr and exit status 1."""
    try:
        yield
    except PackerError as error:
        raise _fail(error) from None
    except KeyboardInterrupt:
        click.echo("packer: interrupted", err=True)
        sys.exit(130)


class _Progress:
    """A progress bar on stderr that appears only when a build takes more than a moment."""

    DELAY = 0.5

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.started = time.monotonic()
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or time.monotonic() - self.started < self.DELAY:
            return
        width = 30
        filled = width * done // max(total, 1)
        bar = "#" * filled + "-" * (width - filled)
        click.echo(f"\r[{bar}] {done}/{total} members", nl=False, err=True)
        self.shown = True

    def close(self) -> None:
        if self.shown:
            click.echo("\r\033[K", nl=False, err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="packer")
def main() -> None:
    """Turn a Python project folder into one runnable, reproducible .pyz (Phar for Python)."""


def _build_options(function: F, only: frozenset[str] | None = None) -> F:
    """The build options, made from their one definition (packer.config.Settings)."""
    from .config import options

    for option in reversed(list(options())):
        if only is not None and option.name not in only:
            continue
        help = option.help
        shown: str | None = option.shown_default
        if option.kind == "switch":
            shown = shown or ("yes" if option.default else "no")
        elif option.kind == "value" and shown is None and option.default is not None:
            shown = str(option.default)
        if shown:
            help = f"{help} [default: {shown}]"
        kwargs: dict[str, Any] = {"help": help, "default": None, "metavar": option.metavar}
        if option.kind == "switch":
            kwargs.pop("metavar")
        elif option.kind == "flag":
            kwargs.update(is_flag=True)
            kwargs.pop("metavar")
        elif option.kind == "multiple":
            kwargs.update(multiple=True, default=())
        if option.type == "path":
            kwargs["type"] = click.Path(path_type=Path)
        elif option.type == "int" and option.int_range is not None:
            low, high = option.int_range
            kwargs["type"] = click.IntRange(low, high)
        function = click.option(*option.flags, option.name, **kwargs)(function)
    return function


@main.command()
@click.argument("source", type=click.Path(path_type=Path), required=False)
@_build_options
@click.option(
    "--config",
    type=click.Path(path_type=Path),
    help="Read options from this TOML file instead of SOURCE/pyproject.toml.",
)
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
@click.option("-v", "--verbose", is_flag=True, help="List every member written.")
def build(
    source: Path | None, output: Path | None, quiet: bool, verbose: bool, **options: Any
) -> None:
    """Pack the folder SOURCE, and any bundled dependencies, into a runnable .pyz archive.

    SOURCE may be left out when the archive is made of dependencies alone, e.g.
    `packer build --with flake8 --console-script flake8`.
    """
    from .builder import build as build_archive

    # Repeatable options come as tuples, empty when not given: "not given" is None to the API,
    # so that [tool.packer] can supply them.
    given: dict[str, Any] = {
        k: (v or None) if isinstance(v, tuple) else v for k, v in options.items()
    }
    progress = _Progress(enabled=not quiet)
    with _errors():
        try:
            result = build_archive(source, output, progress=progress, **given)
        finally:
            progress.close()
    for warning in result.warnings:
        click.echo(f"packer: warning: {warning}", err=True)
    if verbose:
        for name in result.names:
            click.echo(f"  {name}")
    if not quiet:
        click.echo(result.summary())
        if result.distributions:
            bundled = ", ".join(
                f"{name} {version}" + (" (native)" if native else "")
                for name, version, native in result.distributions
            )
            click.echo(f"bundled: {bundled}")
        for name, version, why in result.extracted:
            click.echo(f"extracted at run time: {name} {version} ({why})")


def _lock_options(function: F) -> F:
    from .config import LOCK_OPTIONS

    return _build_options(function, LOCK_OPTIONS)


@main.command()
@click.argument("source", type=click.Path(path_type=Path), required=False)
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, metavar="FILE",
              help="The lock file to write (requirements with hashes).")  # fmt: skip
@_lock_options
@click.option("--config", type=click.Path(path_type=Path),
              help="Read options from this TOML file, not SOURCE/pyproject.toml.")  # fmt: skip
def lock(source: Path | None, output: Path, config: Path | None, **options: Any) -> None:
    """Pin every dependency of SOURCE (or of --with/-r alone), with hashes, for every Python
    and platform at once; build with --lock FILE to install exactly that."""
    from .install import lock as write

    given = {k: (v or None) if isinstance(v, tuple) else v for k, v in options.items()}
    with _errors():
        info = write(source, output, config=config, **given)
    click.echo(f"wrote {info.path}: {len(info.pins)} pins, sha256 {info.sha256[:16]}")


def _limit_options(function: F) -> F:
    """--max-members/--max-size/--max-ratio, the zip-bomb limits, given to the command as
    one ``limits`` argument (every reading command takes them)."""

    @functools.wraps(function)
    def with_limits(
        *args: Any,
        max_members: int | None,
        max_size: int | None,
        max_ratio: float | None,
        **kwargs: Any,
    ) -> Any:
        defaults = Limits()
        limits = Limits(
            max_members=defaults.max_members if max_members is None else max_members,
            max_size=defaults.max_size if max_size is None else max_size,
            max_ratio=defaults.max_ratio if max_ratio is None else max_ratio,
        )
        return function(*args, limits=limits, **kwargs)

    for option in (
        click.option("--max-ratio", type=click.FloatRange(min=1), metavar="N",
                     help="Refuse archives, and members over 1 MiB, that expand more than N "
                          "times [default: 200]."),
        click.option("--max-size", type=click.IntRange(min=0), metavar="BYTES",
                     help="Refuse archives that unpack to more than BYTES [default: 4 GiB]."),
        click.option("--max-members", type=click.IntRange(min=0), metavar="N",
                     help="Refuse archives with more than N members [default: 200000]."),
    ):  # fmt: skip
        with_limits = option(with_limits)
    return with_limits  # type: ignore[return-value]


_ARCHIVE = click.Path(path_type=Path)


def _signature(archive: str, key: str | None) -> tuple[str, str | None]:
    from .signing import signature_status

    return signature_status(archive, key)


def _read_command(command: Command) -> None:
    """Add the read-side *command* to the CLI, made from its definition in the runtime's
    command table (which the archives' own tools read too)."""

    def run(archive: Path, limits: Limits, **values: Any) -> None:
        with _errors():
            outcome = command.run(str(archive), values, limits, signature=_signature)
        for note in outcome.notes:
            click.echo(f"packer: note: {note}", err=True)
        for line in outcome.out:
            click.echo(line)
        if outcome.status:
            sys.exit(outcome.status)

    run.__doc__ = command.help
    function: Any = _limit_options(run)
    for flag in reversed(command.flags):
        if flag.metavar is None:
            function = click.option(flag.name, flag.key, is_flag=True, help=flag.help)(function)
        else:
            function = click.option(flag.name, flag.key, metavar=flag.metavar, help=flag.help,
                                    type=click.Path(path_type=Path))(function)  # fmt: skip
    for argument in reversed(command.arguments):
        if argument.many:
            function = click.argument(argument.name, nargs=-1)(function)
        else:
            function = click.argument(argument.name, type=click.Path(path_type=Path))(function)
    function = click.argument("archive", type=_ARCHIVE)(function)
    main.command(command.name)(function)


for _command in COMMANDS:
    _read_command(_command)


@main.command()
@click.argument("archive", type=_ARCHIVE)
@click.option("--to", "to", type=click.Choice(("zip", "tar", "pyz")), required=True,
              help="zip: no stub; tar: a .tar.gz of the members; pyz: with a shebang.")  # fmt: skip
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True)
@click.option("-p", "--python", metavar="INTERP", help="With --to pyz: the shebang's interpreter.")
@_limit_options
def convert(archive: Path, to: str, output: Path, python: str | None, limits: Limits) -> None:
    """Convert ARCHIVE to a plain zip, a .tar.gz, or a .pyz with a (new) shebang."""
    from .convert import convert as convert_archive

    with _errors():
        out = convert_archive(archive, output, to, interpreter=python, limits=limits)
    click.echo(f"wrote {out}")


@main.command()
@click.argument("archive", type=_ARCHIVE)
@click.option("--to", "output", type=click.Path(path_type=Path), required=True, metavar="ZIP",
              help="The library zip to write.")  # fmt: skip
@click.option("--leave-out", multiple=True, metavar="NAME",
              help="Leave out this bundled distribution with native code (repeatable); "
                   "without it, any refuses the export.")  # fmt: skip
@click.option("--target", metavar="NAME",
              help="Of a multi-target archive: the target to export (a name packer info "
                   "lists, or its Python version, e.g. 3.12).")  # fmt: skip
@_limit_options
def export(
    archive: Path, output: Path, leave_out: tuple[str, ...], target: str | None, limits: Limits
) -> None:
    """Write ARCHIVE's Python code as a plain library zip, for engines that put a zip on
    their workers' sys.path (spark-submit --py-files, Dask's upload_file): the project's
    modules and the bundled pure distributions with their .dist-info at its top, no stub,
    no __main__.py, no packer runtime."""
    from .export import export as export_archive

    with _errors():
        done = export_archive(archive, output, leave_out, limits, target)
    for name, why in done.by_path:
        click.echo(
            f"packer: warning: {name} reads its own files by path ({why}), which can fail "
            "from a zip",
            err=True,
        )
    for name in done.pth:
        click.echo(
            f"packer: warning: {name} is not read from a zip on sys.path: the paths it adds "
            "are not importable from the export",
            err=True,
        )
    left = f", left out {', '.join(done.left_out)}" if done.left_out else ""
    click.echo(f"wrote {done.path} ({done.members} members{left})")


@main.command()
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, metavar="NAME",
              help="Private key to NAME (mode 0600), public key to NAME.pub.")  # fmt: skip
def keygen(output: Path) -> None:
    """Make an Ed25519 key pair for signing archives (needs the cryptography package)."""
    from .signing import keygen as make_keys

    with _errors():
        private, public = make_keys(output)
    click.echo(f"wrote {private} (private, keep it secret) and {public} (public)")


@main.command()
@click.argument("archive", type=_ARCHIVE)
@click.option("--key", type=click.Path(path_type=Path), required=True, metavar="PRIVATE_KEY",
              help="The Ed25519 private key to sign with.")  # fmt: skip
def sign(archive: Path, key: Path) -> None:
    """Sign ARCHIVE's digest with an Ed25519 key; the signature goes in its zip comment."""
    from .signing import sign as sign_archive

    with _errors():
        digest = sign_archive(archive, key)
    click.echo(f"signed {archive.name} (sha256 {digest})")


@main.group()
def cache() -> None:
    """Show and clean the caches: the runtime's (extracted code, compiled bytecode) and, with
    --build, the build cache (bytecode, deflated members and wheels kept between builds)."""


_BUILD_FLAG = click.option(
    "--build", "build_cache", is_flag=True,
    help="The build cache (PACKER_BUILD_CACHE) instead of the runtime's.",
)  # fmt: skip


def _build_cache_folder() -> str:
    from .buildcache import cache_folder

    folder = cache_folder()
    if folder is None:
        raise click.ClickException("the build cache is turned off (PACKER_BUILD_CACHE=0)")
    return folder


@cache.command("info")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_BUILD_FLAG
def cache_info_command(as_json: bool, build_cache: bool) -> None:
    """List the cache's entries: size, last use, and whether complete."""
    from ._runtime.cache import cache_root, list_entries

    if build_cache:
        from .buildcache import usage

        folder = _build_cache_folder()
        kinds = usage(folder)
        if as_json:
            counts = {k: {"entries": n, "size": size} for k, (n, size) in kinds.items()}
            click.echo(json.dumps({"root": folder, "kinds": counts}, indent=2))
            return
        click.echo(f"build cache: {folder}")
        for kind, (count, size) in kinds.items():
            click.echo(f"  {kind}: {count} entries, {render.human_size(size)}")
        return
    entries = list_entries()
    if as_json:
        payload = {
            "root": str(cache_root()),
            "entries": [
                {
                    "name": e.name,
                    "path": str(e.path),
                    "size": e.size,
                    "last_used": e.last_used,
                    "complete": e.complete,
                }
                for e in entries
            ],
        }
        click.echo(json.dumps(payload, indent=2))
        return
    click.echo(f"cache: {cache_root()}")
    for e in entries:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(e.last_used))
        state = "" if e.complete else "  (incomplete)"
        click.echo(f"  {e.name}  {render.human_size(e.size)}  last used {when}{state}")
    total = sum(e.size for e in entries)
    click.echo(f"{len(entries)} entries, {render.human_size(total)}")


@cache.command("prune")
@click.option("--older-than", type=click.FloatRange(min=0), metavar="DAYS",
              help="Remove entries not used for DAYS days.")  # fmt: skip
@click.option("--all", "remove_all", is_flag=True, help="Remove every entry not in use.")
@_BUILD_FLAG
def cache_prune_command(older_than: float | None, remove_all: bool, build_cache: bool) -> None:
    """Remove cache entries; entries a running archive uses are always kept."""

    from ._runtime.cache import prune

    if older_than is None and not remove_all:
        raise click.UsageError("give --older-than DAYS or --all")
    if build_cache:
        from .buildcache import prune as prune_build

        count, size = prune_build(_build_cache_folder(), older_than, remove_all)
        click.echo(f"{count} removed ({render.human_size(size)})")
        return
    removed, busy = prune(older_than, remove_all=remove_all)
    for entry in removed:
        click.echo(f"removed {entry.name} ({render.human_size(entry.size)})")
    for entry in busy:
        click.echo(f"kept {entry.name}: in use by a running archive, or being extracted", err=True)
    click.echo(f"{len(removed)} removed, {len(busy)} in use")


if __name__ == "__main__":  # pragma: no cover
    main()
