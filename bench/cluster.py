"""A small PySpark job with packer's archive as the workers' Python, against a venv's Python.

Run: python bench/cluster.py [--runs N] [--rows N]

The job (local[2], on loopback) maps every row through a function of the job's own module
that uses orjson (a C extension) and sums per partition. The venv has the job's module and
orjson installed; the archive bundles the same. Each run is a fresh SparkSession, so the
workers start anew (the archive's start-up is part of what is timed); the two contenders
alternate; medians. Both run on this interpreter; Spark's JVM is the same.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
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
    tool_versions,
)

JOB = {
    "benchjob/__init__.py": "",
    "benchjob/work.py": (
        "import orjson\n\n\n"
        "def row(n):\n"
        "    return len(orjson.dumps({'n': n, 'sq': n * n, 'tags': [n % 7, n % 11]}))\n"
    ),
}

DRIVER = """
import os, sys, time
from pyspark.sql import SparkSession
python, rows = sys.argv[1], int(sys.argv[2])
os.environ["PYSPARK_PYTHON"] = python
builder = (SparkSession.builder.master("local[2]").appName("packer-bench")
           .config("spark.ui.enabled", "false").config("spark.driver.host", "127.0.0.1")
           .config("spark.driver.bindAddress", "127.0.0.1"))
if python.endswith(".pyz"):
    builder = builder.config("spark.executorEnv.PACKER_INTERPRETER", "1")
spark = builder.getOrCreate()
began = time.perf_counter()
total = (spark.sparkContext.parallelize(range(rows), 4)
         .map(lambda n: __import__("benchjob.work", fromlist=["row"]).row(n)).sum())
elapsed = time.perf_counter() - began
spark.stop()
print(total, elapsed)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="packer-bench-cluster-"))
    try:
        run_all(work, args, not args.no_record)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_all(work: Path, args: argparse.Namespace, write: bool) -> None:
    src = work / "src"
    for rel, text in JOB.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(text)
    (src / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=69"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "benchjob"\nversion = "1.0"\ndependencies = ["orjson"]\n'
        '[project.scripts]\nbenchjob = "benchjob.work:row"\n'
    )
    tools = make_venv(work / "tools", "-e", str(REPO), "pyspark")
    venv = make_venv(work / "venv", str(src))
    app = work / "job.pyz"
    # --compile, as docs/cluster.md advises: executors may start with an empty cache.
    subprocess.run([str(tools.parent / "packer"), "build", str(src), "-o", str(app),
                    "--compile", "-q"], check=True, env=bench_env())  # fmt: skip
    driver = work / "driver.py"
    driver.write_text(DRIVER)
    env = bench_env(PACKER_CACHE=str(work / "cache"), SPARK_LOCAL_IP="127.0.0.1")
    contenders = {"venv's python": str(venv), "packer archive": str(app)}
    times: dict[str, list[float]] = {name: [] for name in contenders}
    totals = set()
    for run in range(args.runs + 1):  # the first round warms the page cache and the cache
        for name, python in contenders.items():
            proc = subprocess.run([str(tools), str(driver), python, str(args.rows)],
                                  capture_output=True, text=True, env=env, check=False)  # fmt: skip
            if proc.returncode != 0:
                raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
            total, elapsed = proc.stdout.split()
            totals.add(total)
            if run:
                times[name].append(float(elapsed))
    if len(totals) != 1:
        raise SystemExit(f"the contenders computed different results: {totals}")
    base = median(times["venv's python"])
    rows = ["| workers' Python | median s | × venv |", "|---|---:|---:|"]
    for name in contenders:
        rows.append(f"| {name} | {median(times[name]):.2f} | {median(times[name]) / base:.2f} |")
    body = (
        f"`{invocation('cluster.py', args)}` — a PySpark job (local[2], {args.rows} rows through "
        f"orjson in the job's own module, 4 partitions), timed from the first action to its "
        f"result, a fresh session each run; {machine_line()}; "
        f"{tool_versions(tools, 'pyspark')}.\n\n" + "\n".join(rows) + "\n\nTarget: ≤ 1.1×.\n"
    )
    print(body)
    if write:
        record("Cluster (bench/cluster.py)", body)


if __name__ == "__main__":
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    main()
