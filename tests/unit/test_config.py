"""Build options from their one definition: config files, API keywords and the CLI agree."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from helpers import cli

import packer
from packer.config import Settings, given, load_config, options, resolve


def test_every_option_has_a_flag_a_key_and_help() -> None:
    seen_keys = set()
    for option in options():
        assert option.flags and option.help.endswith("."), option
        assert option.key not in seen_keys, option.key
        seen_keys.add(option.key)
        assert option.kind in ("value", "multiple", "switch", "flag"), option
    assert {o.name for o in options()} == {f.name for f in dataclasses.fields(Settings)}


def test_the_command_line_offers_every_option() -> None:
    code, stdout, _ = cli("build", "--help")
    assert code == 0
    for option in options():
        for flag in option.flags[0].split("/"):
            assert flag in stdout, flag


def test_config_values_are_checked_and_paths_made_relative_to_the_file(tmp_path: Path) -> None:
    file = tmp_path / "conf" / "packer.toml"
    file.parent.mkdir()
    file.write_text(
        'output = "out/app.pyz"\nrequirements = ["req.txt"]\n'
        'find-links = ["wheels", "https://example.invalid/simple"]\n'
        "compression-level = 3\nshebang = false\nwith = ['click']\n"
    )
    values = load_config(file)
    assert values["output"] == tmp_path / "conf" / "out" / "app.pyz"
    assert values["requirements"] == (tmp_path / "conf" / "req.txt",)
    assert values["find_links"] == (str(tmp_path / "conf" / "wheels"),
                                    "https://example.invalid/simple")  # fmt: skip
    settings = resolve({"compression_level": 9}, values)
    assert (settings.compression_level, settings.shebang, settings.compile) == (9, False, False)
    assert settings.with_packages == ("click",)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("shebnag = false", "unknown key 'shebnag'"),
        ("shebang = 'no'", "shebang must be true or false"),
        ("jobs = 0", "jobs must be at least 1"),
        ("jobs = true", "jobs must be an integer"),
        ("compression-level = 10", "compression-level must be from 0 to 9"),
        ("include = 'src'", "include must be a list of strings"),
        ("include = [1]", "include must be a list of strings"),
        ("entry = 5", "entry must be a string"),
    ],
)
def test_bad_config_values_name_the_key(tmp_path: Path, text: str, why: str) -> None:
    file = tmp_path / "bad.toml"
    file.write_text(text + "\n")
    with pytest.raises(packer.PackerError, match=why):
        load_config(file)


def test_api_keywords_are_the_options() -> None:
    assert given({"entry": "m:f", "include": ["a"], "compile": None}) == {
        "entry": "m:f",
        "include": ("a",),
    }
    with pytest.raises(TypeError, match="unexpected keyword argument 'shebnag'"):
        packer.build("src", "out.pyz", shebnag=False)
    with pytest.raises(packer.PackerError, match=r"compression-level must be from 0 to 9"):
        given({"compression_level": 12})
