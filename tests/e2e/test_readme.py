"""The README: its Quick start (two commands, CI running the second word for word) and its
walkthrough, every command of which is run here as written."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

from helpers import (
    REPO,
    QuickStart,
    clean_env,
    free_port,
    readme_env,
    readme_section,
    run,
    sh_blocks,
)


def test_quick_start_has_exactly_two_commands() -> None:
    commands = sh_blocks(readme_section("Quick start"))
    assert len(commands) == 2
    assert all("\n" not in command for command in commands)


def test_ci_runs_the_readme_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert sh_blocks(readme_section("Quick start"))[1] in ci.splitlines()
    assert "set -euo pipefail" in ci


def test_quick_start_builds_app_pyz_and_serves(quick_start: QuickStart) -> None:
    assert quick_start.returncode == 0, quick_start.stderr  # Ctrl-C stops it cleanly
    summary, bundled = quick_start.stdout.splitlines()[:2]
    assert summary.startswith("app.pyz: ") and "members" in summary
    for name in ("click", "pytest", "uvloop"):
        assert f" {name} " in bundled, bundled
    assert re.search(r"listening on 127\.0\.0\.1:\d+", quick_start.stderr)
    assert "stopped" in quick_start.stderr and "Traceback" not in quick_start.stderr
    assert not (quick_start.folder / "server.pid").exists()


def walkthrough_commands() -> list[str]:
    lines = "\n".join(sh_blocks(readme_section("Walkthrough: the Phar article, with packer")))
    return [line for line in lines.splitlines() if line.strip()]


def test_walkthrough_commands_all_work(quick_start: QuickStart) -> None:
    folder = quick_start.folder
    port = free_port()  # the README's 9002 may be taken here
    env = readme_env(folder)
    done: dict[str, subprocess.CompletedProcess[str]] = {}
    try:
        for line in walkthrough_commands():
            command = line.replace("9002", str(port))
            proc = run(["bash", "-c", command], cwd=folder, env=env, timeout=900)
            assert proc.returncode == 0, f"{line}\n{proc.stdout}\n{proc.stderr}"
            done[line] = proc
    finally:
        run([folder / "app.pyz", "stop", "--timeout", "10"], env=env)

    def out(prefix: str) -> str:
        return next(p.stdout for line, p in done.items() if line.startswith(prefix))

    assert out("python3 build.py").startswith("app.pyz: ")
    assert out("python3 build.py -q -o again.pyz").strip() == "identical"
    assert re.search(r"^  test ", out("./app.pyz --help"), re.M)
    assert out("python3 app.pyz --version").startswith("sample-server, version ")
    started = re.fullmatch(
        rf"listening on 127\.0\.0\.1:{port} \(pid (\d+)\)\n", out("./app.pyz start")
    )
    assert started, out("./app.pyz start")
    assert out("./app.pyz status").startswith(f"master {started[1]} ")
    assert out("./app.pyz stop") == f"stopped (pid {started[1]})\n"
    echoed = out("python3 examples/echo_from_archive.py")
    assert echoed.startswith("echoed 'hello from app.pyz' on ")
    assert echoed.rstrip().endswith(f"{folder}/app.pyz/sample_server/__init__.py")
    info = out("packer info")
    assert "entry point: sample_server.cli:main" in info and "digest: ok" in info
    natives = re.search(r"^native: (.*)$", info, re.M)
    assert natives, info
    expected = [f"uvloop {{v}} (cp{target}; optional)" for target in ("310", "311", "312", "313")]
    shown = sorted(re.sub(r"uvloop \S+ ", "uvloop {v} ", n) for n in natives[1].split(", "))
    assert shown == expected, natives[1]
    assert re.search(r"^targets: cp310-\S+, cp311-\S+, cp312-\S+, cp313-\S+$", info, re.M)
    assert out("packer verify").startswith("app.pyz: OK (packer archive, ")
    assert (folder / "app" / "__main__.py").is_file()
    assert out("python3 app/ --version") == out("python3 app.pyz --version")
    assert out("python3 app.zip --version") == out("python3 app.pyz --version")
    assert (folder / "app.zip").read_bytes()[:2] == b"PK"  # no shebang
    tested = out("./app.pyz test")
    assert re.search(r"^\d+ passed", tested.splitlines()[-1]) and "failed" not in tested


def test_build_py_reports_failure_in_one_line(tmp_path: Path) -> None:
    proc = run(
        [sys.executable, REPO / "build.py", "-o", tmp_path / "no" / "app.pyz"], env=clean_env()
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("build.py: ") and proc.stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def reference_commands() -> list[str]:
    """The ``packer`` and ``sample-server`` commands shown in the README's reference sections
    (placeholders and all), with comments dropped and ``[optional]`` parts spelled out."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    commands = []
    for block in sh_blocks(text):
        for line in block.splitlines():
            line = re.sub(r"\s+#\s.*$", "", line).strip()
            if line.startswith(("packer ", "sample-server ")):
                commands.append(line.replace("[", "").replace("]", ""))
    return commands


def test_reference_commands_are_accepted_by_the_clis() -> None:
    """Every option and subcommand the README shows exists: each command is parsed by the
    real command-line interface (not run: its paths are placeholders)."""
    import click

    from packer.cli import main as packer_main
    from sample_server.cli import main as server_main

    commands = reference_commands()
    assert len(commands) >= 15, commands
    for line in commands:
        program, *rest = shlex.split(line)
        command: click.Command | None = packer_main if program == "packer" else server_main
        ctx = click.Context(command)  # type: ignore[arg-type]
        name = program
        while isinstance(command, click.Group):  # down to the subcommand: packer cache prune
            name, *rest = rest
            command = command.get_command(ctx, name)
            assert command is not None, f"README: {line}: no command {name!r}"
        assert command is not None
        try:
            command.make_context(name, rest, parent=ctx)
        except click.UsageError as error:
            raise AssertionError(f"README: {line}: {error.format_message()}") from None


def test_reference_python_api_call_is_accepted() -> None:
    import ast
    import inspect

    import packer

    section = readme_section("Inspecting, checking and unpacking (the Phar toolbox)")
    code = re.search(r"```python\n(.*?)\n```", section, re.S)
    assert code, "the Python API example"
    calls = [
        node
        for node in ast.walk(ast.parse(code[1]))
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "packer.build"
    ]
    assert len(calls) == 1
    args = [ast.literal_eval(arg) for arg in calls[0].args]
    kwargs = {k.arg: ast.literal_eval(k.value) for k in calls[0].keywords if k.arg}
    inspect.signature(packer.build).bind(*args, **kwargs)


def test_the_readme_lists_every_build_option_as_defined() -> None:
    from packer.config import options_table

    table = options_table()
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert table in text, (
        "README.md's table of build options differs from packer/config.py's Settings; "
        "paste this in its place:\n" + table
    )
