"""The read-side commands, defined once: info, list, verify and extract, with their arguments,
flags and help. packer's command line makes its commands from this table, and an archive's
own tools (``PACKER_TOOLS=1 ./app.pyz info``) parse their arguments with it, so the two never
diverge.

Stdlib only and Python 3.9 syntax: this module is copied into every archive.
"""

from __future__ import annotations

import json
import os
import sys

from .errors import PackerError
from .extraction import extract
from .inspection import info, list_members, verify
from .render import TOOLS_NOTE, info_lines, list_lines, printable, verify_lines

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations only
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

    from .format import Limits

    #: (archive, public key or None) -> (status, problem): checks a signature.
    SignatureCheck = Callable[[str, Optional[str]], Tuple[str, Optional[str]]]

__all__ = ["COMMANDS", "Argument", "Command", "Flag", "Outcome", "tools_main"]


class Argument:
    """A positional argument after ARCHIVE."""

    __slots__ = ("many", "name")

    def __init__(self, name: str, many: bool = False) -> None:
        self.name = name
        self.many = many


class Flag:
    """An option: a switch, or one that takes a value (*metavar*). *installed*: only with
    packer installed (an archive cannot check its own signature in a way that means
    anything)."""

    __slots__ = ("help", "installed", "metavar", "name")

    def __init__(
        self, name: str, help: str, metavar: Optional[str] = None, installed: bool = False
    ) -> None:
        self.name = name
        self.help = help
        self.metavar = metavar
        self.installed = installed

    @property
    def key(self) -> str:
        """The name the command's function receives it by."""
        return self.name[2:].replace("-", "_")


class Outcome:
    """What a command printed, and its exit status."""

    __slots__ = ("notes", "out", "status")

    def __init__(self, out: List[str], notes: Sequence[str] = (), status: int = 0) -> None:
        self.out = out
        self.notes = list(notes)
        self.status = status


class Command:
    """One read-side command."""

    __slots__ = ("arguments", "flags", "help", "name", "run")

    def __init__(
        self,
        name: str,
        help: str,
        run: Callable[..., Outcome],
        arguments: Sequence[Argument] = (),
        flags: Sequence[Flag] = (),
    ) -> None:
        self.name = name
        self.help = help
        self.run = run
        self.arguments = tuple(arguments)
        self.flags = tuple(flags)


_JSON = Flag("--json", "Print JSON.")


def _info(archive: str, values: Dict[str, Any], limits: Optional[Limits], **_: Any) -> Outcome:
    data = info(archive, limits)
    if values.get("json"):
        return Outcome([json.dumps(data, indent=2, sort_keys=True)])
    return Outcome(info_lines(data))


def _list(archive: str, values: Dict[str, Any], limits: Optional[Limits], **_: Any) -> Outcome:
    notes: List[str] = []
    rows = list_members(archive, limits, notes)
    if values.get("json"):
        return Outcome([json.dumps(rows, indent=2)], notes)
    return Outcome(list_lines(rows, bool(values.get("long")), bool(values.get("tree"))), notes)


def _verify(
    archive: str,
    values: Dict[str, Any],
    limits: Optional[Limits],
    signature: Optional[SignatureCheck] = None,
    own: bool = False,
) -> Outcome:
    name = os.path.basename(archive)
    problems, facts = verify(archive, limits)
    key = values.get("key")
    if signature is not None and (key is not None or values.get("require_signature")):
        state, problem = signature(archive, key)
        facts["signature"] = state
        if problem:
            problems.append(problem)
        elif state == "absent":
            problems.append("%s: not signed" % name)
    if own:
        facts["notes"].append(TOOLS_NOTE[len("note: ") :])
    status = 1 if problems else 0
    if values.get("json"):
        payload: Dict[str, Any] = {"ok": not problems, "problems": problems}
        payload.update(facts)
        return Outcome([json.dumps(payload, indent=2)], status=status)
    return Outcome(verify_lines(problems, facts, name), status=status)


def _diff(archive: str, values: Dict[str, Any], limits: Optional[Limits], **_: Any) -> Outcome:
    from .diff import diff

    result = diff(archive, str(values["other"]), limits)
    if values.get("json"):
        return Outcome([json.dumps(result.as_json(), indent=2)], status=int(not result.identical))
    lines = [*result.lines(), "identical" if result.identical else "different"]
    return Outcome([printable(line) for line in lines], status=int(not result.identical))


def _extract(archive: str, values: Dict[str, Any], limits: Optional[Limits], **_: Any) -> Outcome:
    notes: List[str] = []
    dest = values["dest"]
    written = extract(
        archive, dest, values.get("members") or (), bool(values.get("overwrite")), limits, notes
    )
    return Outcome(["extracted %d files to %s" % (len(written), dest)], notes)


COMMANDS = (
    Command(
        "info",
        "Show what ARCHIVE is: interpreter, entry point, build, sizes, digest, distributions.\n\n"
        "Reads packer archives, shiv (environment.json), pex (PEX-INFO), zipapps and plain "
        "zips.",
        _info,
        flags=[_JSON],
    ),
    Command(
        "list",
        "List the members of ARCHIVE.",
        _list,
        flags=[
            Flag("--long", "Show mode, size, packed size and method."),
            Flag("--tree", "Indent names by folder."),
            _JSON,
        ],
    ),
    Command(
        "verify",
        "Check ARCHIVE: structure, digest, every member's SHA-256 and size, CRCs.\n\n"
        "Every problem is reported, one line each; the exit status is 0 only when all hold. A "
        "digest detects corruption; only a signature checked with --key against a key you "
        "trust says who made the archive.",
        _verify,
        flags=[
            Flag(
                "--key",
                "Check the archive's signature against this Ed25519 public key.",
                metavar="PUBLIC_KEY",
                installed=True,
            ),
            Flag("--require-signature", "Fail when the archive is not signed.", installed=True),
            _JSON,
        ],
    ),
    Command(
        "extract",
        "Extract ARCHIVE (or the MEMBERS named; folders select their contents) into DEST.\n\n"
        "Names that would land outside DEST are refused before anything is written; existing "
        "files are kept unless --overwrite.",
        _extract,
        arguments=[Argument("dest"), Argument("members", many=True)],
        flags=[Flag("--overwrite", "Replace files that already exist in DEST.")],
    ),
    Command(
        "diff",
        "Compare ARCHIVE with OTHER: members added (+), removed (-), changed (~), and fields.\n\n"
        "Exit status 0 when identical, 1 when not.",
        _diff,
        arguments=[Argument("other")],
        flags=[_JSON],
    ),
)


def _usage(name: str) -> str:
    forms = []
    for command in COMMANDS:
        parts = [command.name]
        parts += ["[%s ...]" % a.name.upper() if a.many else a.name.upper()
                  for a in command.arguments]  # fmt: skip
        parts += ["[%s]" % f.name for f in command.flags if not f.installed]
        forms.append(" ".join(parts))
    return "usage: PACKER_TOOLS=1 %s %s" % (name, " | ".join(forms))


def _parse(command: Command, args: Sequence[str]) -> Optional[Dict[str, Any]]:
    """The values of *args* for *command*, or None when they do not fit it."""
    values: Dict[str, Any] = {}
    words = []
    flags = {f.name: f for f in command.flags if not f.installed}
    for arg in args:
        if arg.startswith("--"):
            flag = flags.get(arg)
            if flag is None or flag.metavar is not None:
                return None
            values[flag.key] = True
        else:
            words.append(arg)
    for argument in command.arguments:
        if argument.many:
            values[argument.name] = tuple(words)
            words = []
        elif words:
            values[argument.name] = words.pop(0)
        else:
            return None
    return None if words else values


def tools_main(archive: str, argv: Sequence[str]) -> int:
    """The archive's own read-only tools; what ``PACKER_TOOLS=1 ./app.pyz ...`` runs."""
    name = os.path.basename(archive)
    by_name = {command.name: command for command in COMMANDS}
    command = by_name.get(argv[0]) if argv else None
    installed = [f.name for f in command.flags if f.installed] if command is not None else []
    wanted = [arg for arg in argv[1:] if arg in installed]
    if wanted:
        sys.stderr.write(
            "%s: %s needs packer installed: an archive's own tools cannot vouch for it "
            "(packer %s %s %s)\n" % (name, wanted[0], argv[0], name, " ".join(argv[1:]))
        )
        return 2
    values = _parse(command, argv[1:]) if command is not None else None
    if command is None or values is None:
        sys.stderr.write(_usage(name) + "\n")
        return 2
    try:
        outcome = command.run(archive, values, None, own=True)
    except PackerError as error:
        sys.stderr.write("%s: %s\n" % (name, printable(error)))
        return 1
    sys.stdout.write("".join(line + "\n" for line in outcome.out))
    for note in outcome.notes:
        sys.stderr.write("%s: note: %s\n" % (name, note))
    return outcome.status
