"""Start an archive's entry point, the way ``python -m`` or a console script would.

Stdlib only and Python 3.9 syntax: this module is copied into every archive.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations only
if TYPE_CHECKING:
    from typing import Any, NoReturn, Tuple

__all__ = ["call_entry", "main_module", "run_module_as_main"]


def call_entry(spec: str) -> NoReturn:
    """Import ``module:attr.path`` and exit with what calling it returns (console-script style)."""
    module_name, _, attr_path = spec.partition(":")
    target: Any = importlib.import_module(module_name)
    for part in attr_path.split("."):
        target = getattr(target, part)
    sys.exit(target())


def run_module_as_main(name: str) -> None:
    """Run module *name* (or package *name*'s ``__main__``) as ``__main__``, as ``python -m`` does.

    Unlike ``runpy.run_module(alter_sys=True)`` this leaves ``sys.argv[0]`` naming the archive,
    which is what a user typed and what programs print in their usage lines.
    """
    main, code = main_module(name)
    # multiprocessing's spawn start method re-imports __main__ in children by spec name.
    sys.modules["__main__"] = main
    exec(code, main.__dict__)


def main_module(name: str) -> Tuple[types.ModuleType, types.CodeType]:
    """The ``__main__`` module to run *name* as, and its code; ImportError, saying why, when
    there is none (what ``python -m`` says in one line)."""
    spec = importlib.util.find_spec(name)
    if spec is None:
        raise ImportError("No module named %s" % name, name=name)
    if spec.submodule_search_locations is not None:
        # A package: run its __main__ submodule, as python -m does.
        name = name + ".__main__"
        spec = importlib.util.find_spec(name)
        if spec is None:
            raise ImportError(
                "No module named %s; %r is a package and cannot be directly executed"
                % (name, name[: -len(".__main__")]),
                name=name,
            )
    loader = spec.loader
    if loader is None or not hasattr(loader, "get_code"):
        raise ImportError("cannot run %r: its loader has no code" % name, name=name)
    code = loader.get_code(name)
    if code is None:
        raise ImportError("cannot run %r: no code" % name, name=name)
    main = types.ModuleType("__main__")
    main.__file__ = spec.origin
    main.__loader__ = loader
    main.__package__ = spec.parent
    main.__spec__ = spec
    return main, code
