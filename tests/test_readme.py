"""The README's Quick start: its two commands, and CI running the second word for word."""

from __future__ import annotations

import re
import sys

from helpers import REPO, clean_env, run


def quick_start_commands() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)\n```", section, re.S)


def test_quick_start_has_exactly_two_commands() -> None:
    commands = quick_start_commands()
    assert len(commands) == 2
    assert all("\n" not in command for command in commands)


def test_ci_runs_the_readme_test_command() -> None:
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert quick_start_commands()[1] in ci.splitlines()
    assert "set -euo pipefail" in ci


def test_build_py_builds_a_runnable_archive(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "app.pyz"
    # The first command, with the output redirected so the checkout stays clean.
    proc = run([sys.executable, REPO / "build.py", "-o", out], env=clean_env())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("app.pyz: ")
    ran = run([out, "tester"], cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("Hello, tester!")
    again = tmp_path / "again.pyz"
    run([sys.executable, REPO / "build.py", "-o", again, "-q"], env=clean_env())
    assert again.read_bytes() == out.read_bytes()


def test_build_py_reports_failure_in_one_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    proc = run(
        [sys.executable, REPO / "build.py", "-o", tmp_path / "no" / "app.pyz"], env=clean_env()
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("build.py: ") and proc.stderr.count("\n") == 1
