"""Verify speed: ``packer verify`` against ``sha256sum`` on a 200 MB archive.

Run: python bench/verify.py [--rounds N] [--megabytes N]

The archive mixes incompressible data (stored) and text (deflated), so verify has both
inflating and hashing to do. Throughput is archive bytes per second of wall time; the ratio
is packer's throughput over sha256sum's. Runs are interleaved; medians go to RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    REPO,
    bench_env,
    invocation,
    machine_line,
    make_venv,
    median,
    record,
    timed,
    tool_versions,
)

_WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi".split()  # noqa: SIM905


def make_tree(root: Path, megabytes: int) -> None:
    rng = random.Random(200)
    data = root / "data"
    data.mkdir(parents=True)
    (root / "main.py").write_text("print('verify bench')\n")
    # Random bytes (stored) and word salad (deflated about 6:1), 1 MB files.
    for i in range(int(megabytes * 0.6)):
        (data / f"blob{i}.bin").write_bytes(rng.randbytes(1_000_000))
    for i in range(int(megabytes * 0.4 * 2.3)):
        (data / f"text{i}.txt").write_text(" ".join(rng.choices(_WORDS, k=185_000)))


def verify_on_start_cost(work: Path, python: Path, packer: Path, runs: int, invoked: str) -> str:
    """Start-up of a 20 MB archive with and without PACKER_VERIFY=1 (the digest checked)."""
    src = work / "small"
    make_tree(src, 27)  # about 20 MB once packed
    archive = work / "twenty.pyz"
    timed([packer, "build", src, "-o", archive, "-m", "main", "--no-compile", "-q"])
    size = archive.stat().st_size
    command = [python, archive]
    times: dict[str, list[float]] = {"plain": [], "PACKER_VERIFY=1": []}
    timed(command)
    timed(command, PACKER_VERIFY="1")
    for _ in range(runs):
        times["plain"].append(timed(command))
        times["PACKER_VERIFY=1"].append(timed(command, PACKER_VERIFY="1"))
    base = median(times["plain"])
    cost = median(times["PACKER_VERIFY=1"]) - base
    return (
        f"`{invoked}` — start-up of a {size / 1e6:.0f} MB archive, {runs} runs each, "
        f"interleaved; {machine_line()}; {tool_versions(python)}.\n\n"
        "| run | median ms |\n|---|---:|\n"
        f"| plain | {base * 1000:.0f} |\n"
        f"| PACKER_VERIFY=1 | {median(times['PACKER_VERIFY=1']) * 1000:.0f} |\n\n"
        f"Checking the digest at start costs about {cost * 1000:.0f} ms for {size / 1e6:.0f} MB "
        "(one SHA-256 pass over the file).\n"
    )


def peak_rss(python: Path, command: list[str | Path]) -> int:
    """Run *command*; the peak resident set size, in bytes, of its largest process."""
    probe = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run(
        [python, "-c", probe, *map(str, command)],
        capture_output=True,
        text=True,
        check=True,
        env=bench_env(),
    )
    return int(out.stdout.split()[-1]) * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--megabytes",
        type=int,
        default=270,
        help="scales the tree; 270 gives an archive of about 200 MB",
    )
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    sha256sum = shutil.which("sha256sum")
    if sha256sum is None:
        raise SystemExit("sha256sum (coreutils) is needed for this benchmark")
    work = Path(tempfile.mkdtemp(prefix="packer-bench-verify-"))
    try:
        python = make_venv(work / "venv", "-e", str(REPO))
        packer = python.parent / "packer"
        make_tree(work / "src", args.megabytes)
        archive = work / "big.pyz"
        build: list[str | Path] = [
            packer,
            "build",
            work / "src",
            "-o",
            archive,
            "-m",
            "main",
            "--no-compile",
            "-q",
        ]
        peak = peak_rss(python, build)
        size = archive.stat().st_size
        members = sum(p.stat().st_size for p in (work / "src").rglob("*") if p.is_file())
        with zipfile.ZipFile(archive) as zf:
            texts = [i for i in zf.infolist() if i.filename.endswith(".txt")]
            text_in = sum(i.file_size for i in texts)
            text_out = sum(i.compress_size for i in texts)
        commands: dict[str, list[str | Path]] = {
            "sha256sum": [sha256sum, archive],
            "packer verify": [packer, "verify", archive],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for command in commands.values():
            timed(command)  # page cache warm for both
        for _ in range(args.rounds):
            for name, command in commands.items():
                times[name].append(timed(command))
        rows = ["| command | median s | MB/s | × sha256sum throughput | runs (s) |",
                "|---|---:|---:|---:|---|"]  # fmt: skip
        base = median(times["sha256sum"])
        for name, values in times.items():
            m = median(values)
            runs = ", ".join(f"{v:.2f}" for v in values)
            rows.append(f"| {name} | {m:.2f} | {size / m / 1e6:.0f} | {base / m:.2f} | {runs} |")
        body = (
            f"`{invocation('verify.py', args)}` — a {size / 1e6:.0f} MB archive "
            f"({members / 1e6:.0f} MB of members in 1 MB files: random ones, stored, and text "
            f"ones, deflated {text_in / max(text_out, 1):.1f}:1); "
            f"{machine_line()}; {tool_versions(python)}, "
            f"{(os.cpu_count() or 1) + 1} threads.\n\n"
            + "\n".join(rows)
            + "\n\n`packer verify` parses the archive's structure, hashes the whole file "
            "(SHA-256) and, in parallel, inflates every member, checks its CRC and size and "
            "hashes it against the manifest; sha256sum only hashes the file once. packer's time "
            "includes starting Python.\n\n"
            f"Building this archive (`packer build --no-compile`) peaked at {peak / 1e6:.0f} MB "
            "resident (the largest of the builder's processes).\n"
        )
        print(body)
        if not args.no_record:
            record("Verify speed (bench/verify.py)", body)
        start = verify_on_start_cost(
            work, python, packer, args.rounds * 4, invocation("verify.py", args)
        )
        print(start)
        if not args.no_record:
            record("Cost of verify-on-start (bench/verify.py)", start)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
