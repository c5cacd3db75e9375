"""The read-side commands come from one table: the CLI's commands and an archive's own tools
(PACKER_TOOLS=1) take the same arguments and flags."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from rawzip import packer_like

from packer._runtime.commands import COMMANDS, tools_main
from packer.cli import main


def test_the_cli_has_every_command_of_the_table_with_its_flags() -> None:
    assert isinstance(main, click.Group)
    for command in COMMANDS:
        made = main.commands[command.name]
        assert made.help == command.help
        options = {opt for param in made.params for opt in getattr(param, "opts", ())}
        assert {flag.name for flag in command.flags} <= options
        arguments = [p.name for p in made.params if isinstance(p, click.Argument)]
        assert arguments == ["archive", *(a.name for a in command.arguments)]


def test_an_archives_own_tools_parse_with_the_same_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = tmp_path / "a.pyz"
    archive.write_bytes(packer_like({"a.py": b"print(1)\n"}))
    assert tools_main(str(archive), ["list", "--long"]) == 0
    assert "a.py" in capsys.readouterr().out
    assert tools_main(str(archive), ["verify", "--json"]) == 0
    assert '"ok": true' in capsys.readouterr().out
    assert tools_main(str(archive), ["diff", str(archive)]) == 0
    assert capsys.readouterr().out.endswith("identical\n")
    for bad in (["nope"], ["list", "--bogus"], ["extract"], ["info", "extra"], []):
        assert tools_main(str(archive), bad) == 2, bad
        assert capsys.readouterr().err.startswith("usage: PACKER_TOOLS=1 a.pyz info")
    assert tools_main(str(archive), ["verify", "--key", "k.pub"]) == 2
    assert "--key needs packer installed" in capsys.readouterr().err
