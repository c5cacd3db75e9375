"""``PACKER_INTERPRETER=1 ./app.pyz [-c CODE | -m MOD | SCRIPT | -]``: Python in the archive's
environment, as pex's interpreter mode does. With no arguments it starts a REPL.

Stdlib only and Python 3.9 syntax: this module is copied into every archive.
"""

from __future__ import annotations

import os
import runpy
import sys
import types

from .launch import main_module

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations only
if TYPE_CHECKING:
    from typing import List, NoReturn, Tuple

__all__ = ["run_interpreter"]

_USAGE = (
    "usage: PACKER_INTERPRETER=1 %s [-u] [-B] [-W ARG] [-O] [-X OPT] ... "
    "[-c CODE | -m MODULE | SCRIPT | -] [ARG ...]"
)

#: Flags this process applies itself: they need no restart.
_HERE = frozenset("uBsq")
#: Flags that change how the interpreter itself runs: the archive restarts under them.
_RESTART = frozenset("OEISbdvR")
#: Flags that take a value (``-W error``, ``-Werror``, ``-X dev``).
_VALUED = frozenset("WX")


def run_interpreter(archive: str, args: List[str]) -> NoReturn:
    """Run what *args* ask for, like ``python`` would, then exit. Nothing is written to
    stdout but what the code run writes (engines read a worker's stdout)."""
    name = os.path.basename(archive)
    flags, restart, warnings, args = _options(name, args)
    if restart:
        # -O, -X, -E... are the interpreter's own: start again under them, in this mode.
        command = [sys.executable, *flags, archive, *args]
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, command)
    if "-B" in flags:
        sys.dont_write_bytecode = True
    if "-u" in flags:
        _unbuffered()
    if warnings:
        import warnings as _warnings

        sys.warnoptions.extend(warnings)
        for option in warnings:
            _warnings._setoption(option)  # type: ignore[attr-defined]  # what -W does
    _run(archive, name, args)


def _options(name: str, args: List[str]) -> Tuple[List[str], bool, List[str], List[str]]:
    """Split the interpreter's own options off *args*: (for a restart, whether one is
    needed, the -W options, the rest)."""
    flags: List[str] = []
    restart = False
    warnings: List[str] = []
    args = list(args)
    while args and args[0].startswith("-") and args[0] not in ("-", "--") and len(args[0]) > 1:
        if args[0] in ("-V", "--version"):
            sys.stdout.write("Python %s\n" % sys.version.split()[0])
            sys.exit(0)
        if args[0][1] in "cm":
            break  # -c CODE, -m MODULE: what to run
        option = args.pop(0)
        if option.startswith("--"):  # --version is above; python has no other long option
            sys.exit("%s: unknown option %s\n%s" % (name, option, _USAGE % name))
        letters = option[1:]
        while letters:
            letter, letters = letters[0], letters[1:]
            if letter in _VALUED:
                value = letters or (args.pop(0) if args else "")
                if not value:
                    sys.exit("%s: -%s needs an argument\n%s" % (name, letter, _USAGE % name))
                flags += ["-" + letter, value]
                restart = restart or letter == "X"
                if letter == "W":
                    warnings.append(value)
                break
            if letter in _HERE:
                flags.append("-" + letter)
            elif letter in _RESTART:
                flags.append("-" + letter)
                restart = True
            else:
                sys.exit("%s: unknown option -%s\n%s" % (name, letter, _USAGE % name))
    if args and args[0] == "--":
        args.pop(0)
    return flags, restart, warnings, args


def _unbuffered() -> None:
    """What -u does: stdout and stderr unbuffered down to the file descriptor."""
    import io

    for stream in ("stdout", "stderr"):
        current = getattr(sys, stream)
        try:
            fd = current.fileno()
        except (AttributeError, OSError, ValueError):
            continue
        current.flush()
        raw = io.FileIO(fd, "w", closefd=False)
        setattr(sys, stream, io.TextIOWrapper(
            raw, encoding=current.encoding, errors=current.errors, write_through=True,
            line_buffering=False,
        ))  # fmt: skip


def _run(archive: str, name: str, args: List[str]) -> NoReturn:
    if args and args[0].startswith("-c"):
        source = args[0][2:] or (args[1] if len(args) > 1 else None)
        if source is None:
            sys.exit("%s: -c needs an argument\n%s" % (name, _USAGE % name))
        rest = args[1:] if args[0][2:] else args[2:]
        sys.argv = ["-c", *rest]
        _exec(compile(source, "<string>", "exec"))
    elif args and args[0].startswith("-m"):
        module = args[0][2:] or (args[1] if len(args) > 1 else None)
        if module is None:
            sys.exit("%s: -m needs a module name\n%s" % (name, _USAGE % name))
        rest = args[1:] if args[0][2:] else args[2:]
        try:
            main, main_code = main_module(module)
        except ImportError as error:
            sys.exit("%s: %s" % (name, error))
        sys.argv = [main.__file__ or module, *rest]
        sys.modules["__main__"] = main
        exec(main_code, main.__dict__)
    elif args and args[0] == "-":
        sys.argv = ["-", *args[1:]]
        _exec(compile(sys.stdin.read(), "<stdin>", "exec"))
    elif args:
        sys.argv = list(args)
        runpy.run_path(args[0], run_name="__main__")
    elif sys.stdin.isatty():
        import code

        sys.argv = [""]
        code.interact(banner="Python %s in %s" % (sys.version.split()[0], archive), exitmsg="")
    else:
        sys.argv = ["-"]
        _exec(compile(sys.stdin.read(), "<stdin>", "exec"))
    sys.exit(0)


def _exec(code: types.CodeType) -> None:
    main = types.ModuleType("__main__")
    sys.modules["__main__"] = main
    exec(code, main.__dict__)
