"""``PACKER_INTERPRETER=1 ./app.pyz [-c CODE | -m MOD | SCRIPT | -]``: Python in the archive's
environment, as pex's interpreter mode does. With no arguments it starts a REPL.

Stdlib only and Python 3.9 syntax: this module is copied into every archive.
"""

from __future__ import annotations

import os
import runpy
import sys
import types

from .launch import run_module_as_main

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations only
if TYPE_CHECKING:
    from typing import List, NoReturn

__all__ = ["run_interpreter"]

_USAGE = "usage: PACKER_INTERPRETER=1 %s [-c CODE | -m MODULE | SCRIPT | -] [ARG ...]"


def run_interpreter(archive: str, args: List[str]) -> NoReturn:
    """Run what *args* ask for, like ``python`` would, then exit."""
    name = os.path.basename(archive)
    if args and args[0] == "-c":
        if len(args) < 2:
            sys.exit("%s: -c needs an argument\n%s" % (name, _USAGE % name))
        sys.argv = ["-c", *args[2:]]
        _exec(compile(args[1], "<string>", "exec"))
    elif args and args[0] == "-m":
        if len(args) < 2:
            sys.exit("%s: -m needs a module name\n%s" % (name, _USAGE % name))
        sys.argv = [args[1], *args[2:]]
        run_module_as_main(args[1])
    elif args and args[0] == "-":
        sys.argv = ["-", *args[1:]]
        _exec(compile(sys.stdin.read(), "<stdin>", "exec"))
    elif args and args[0].startswith("-"):
        sys.exit("%s: unknown option %s\n%s" % (name, args[0], _USAGE % name))
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
