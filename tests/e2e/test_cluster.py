"""One archive as the Python environment of a cluster's workers: real PySpark (local[2]) and
real Dask distributed (a scheduler and two workers, separate processes), all on 127.0.0.1.

The job's code is a project of the tests' own; one of its modules uses orjson, a bundled C
extension, which a zip on sys.path cannot load, and the archive can (from its cache). Then
the same job's pure part goes through ``packer export``'s library zip, the way those engines
take plain zips (``--py-files``, ``Client.upload_file``).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import clean_env, packer_cli, write_tree

pytestmark = [
    pytest.mark.network,  # the archives bundle orjson (and dask) from PyPI
    pytest.mark.slow,
    # The engines' own imports warn about things that are theirs to fix.
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]

JOB = {
    "jobmod/__init__.py": '"""The job\'s code, imported by the workers from the archive."""\n',
    "jobmod/fast.py": (
        "import orjson\n\n\n"
        "def encode(n):\n    return orjson.dumps({'n': n, 'sq': n * n}).decode()\n\n\n"
        "def partition_sums(rows):\n    rows = list(rows)\n"
        "    yield orjson.dumps([len(rows), sum(rows)]).decode()\n\n\n"
        "def where():\n    import sys\n\n"
        "    return [jobmod_file(), orjson.__file__, sys.argv[0]]\n\n\n"
        "def jobmod_file():\n    import jobmod\n    return jobmod.__file__\n"
    ),
    "jobmod/pure.py": (
        "import json\n\n\ndef encode(n):\n    return json.dumps({'n': n, 'cube': n ** 3})\n"
    ),
    # Run as the archive's entry point only; an engine importing the code must never run it.
    "__main__.py": (
        "import os\nopen(os.environ['JOB_MARKER'], 'w').close()\nprint('the job ran')\n"
    ),
}


def _pins(*names: str) -> list[str]:
    """``--with NAME==VERSION`` of what this test environment has, so that the archive's
    copies are the ones the client speaks to."""
    return [arg for n in names for arg in ("--with", f"{n}=={importlib.metadata.version(n)}")]


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tree(tmp_path_factory.mktemp("job") / "src", JOB)


def build(src: Path, out: Path, *extra: str) -> Path:
    proc = packer_cli("build", src, "-o", out, "--no-project", "--with", "orjson", "-q", *extra)
    assert proc.returncode == 0, proc.stderr
    return out


def export(app: Path, out: Path) -> Path:
    proc = packer_cli("export", app, "--to", out, "--leave-out", "orjson")
    assert proc.returncode == 0, proc.stderr
    return out


# --- PySpark -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spark_job(job: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(job, tmp_path_factory.mktemp("spark") / "job.pyz")


@pytest.fixture
def spark(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """A local[2] SparkSession on loopback whose Python workers are PYSPARK_PYTHON."""
    from pyspark.sql import SparkSession

    monkeypatch.setenv("SPARK_LOCAL_IP", "127.0.0.1")
    monkeypatch.setenv("JOB_MARKER", str(tmp_path / "job-ran"))
    yield lambda **conf: _session(SparkSession, conf)
    active = SparkSession.getActiveSession()
    if active is not None:
        active.stop()
    assert not (tmp_path / "job-ran").exists()


def _session(builder_class: object, conf: dict[str, str]) -> object:
    builder = (
        builder_class.builder.master("local[2]")  # type: ignore[attr-defined]
        .appName("packer-test")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.python.worker.reuse", "true")
        # Arrow is an optional extra of pyspark's (with pandas), not installed here.
        .config("spark.sql.execution.pythonUDF.arrow.enabled", "false")
    )
    for key, value in conf.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def test_spark_workers_run_the_archive_as_their_python(
    spark_job: Path, spark: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pyspark.sql.functions import udf

    # What spark-submit's spark.pyspark.python sets; the workers' environment, as a cluster's
    # configuration says it (spark.executorEnv.*).
    monkeypatch.setenv("PYSPARK_PYTHON", str(spark_job))
    session = spark(**{"spark.executorEnv.PACKER_INTERPRETER": "1"})  # type: ignore[operator]
    sc = session.sparkContext

    def where(_: object) -> Iterator[str]:
        yield json.dumps(__import__("jobmod.fast", fromlist=["where"]).where())

    for jobmod_file, orjson_file, argv0 in map(json.loads, sc.parallelize(range(2), 2)
                                                  .mapPartitions(where).collect()):  # fmt: skip
        assert jobmod_file == f"{spark_job}/jobmod/__init__.py"
        assert "/orjson/" in orjson_file and not orjson_file.startswith(str(spark_job))
        assert argv0.endswith("pyspark/daemon.py")  # python -m pyspark.daemon, as Spark runs it

    def sums(rows: Iterator[int]) -> Iterator[str]:
        return __import__("jobmod.fast", fromlist=["partition_sums"]).partition_sums(rows)

    got = sc.parallelize(range(10), 2).mapPartitions(sums).collect()
    assert [json.loads(x) for x in got] == [[5, 10], [5, 35]]
    encode = udf(lambda n: __import__("jobmod.fast", fromlist=["encode"]).encode(n))
    rows = session.range(6).withColumn("j", encode("id")).collect()  # type: ignore[attr-defined]
    assert [json.loads(r.j) for r in rows] == [{"n": n, "sq": n * n} for n in range(6)]


def test_spark_py_files_take_the_library_export(
    spark_job: Path, spark: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib = export(spark_job, tmp_path / "lib.zip")
    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)  # a plain Python, without the job
    session = spark(**{"spark.submit.pyFiles": str(lib)})  # type: ignore[operator]

    def encode(n: int) -> str:
        return __import__("jobmod.pure", fromlist=["encode"]).encode(n)

    got = session.sparkContext.parallelize(range(4), 2).map(encode).collect()  # type: ignore[attr-defined]
    assert [json.loads(x) for x in got] == [{"n": n, "cube": n**3} for n in range(4)]


# --- Dask distributed ----------------------------------------------------------------------

DASK = ("dask", "distributed", "cloudpickle", "msgpack", "tornado", "toolz")


@pytest.fixture(scope="module")
def dask_job(job: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(job, tmp_path_factory.mktemp("dask") / "job.pyz", *_pins(*DASK))


def _start(command: list[str], log: Path, **env: str) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=clean_env(**env),
            start_new_session=True,
        )  # fmt: skip


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[object]:
    """Starts ``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1 with the
    given Python command; returns the scheduler file. All are stopped afterwards."""
    procs: list[subprocess.Popen[bytes]] = []
    marker = tmp_path / "job-ran"

    def start(python: list[str], **env: str) -> Path:
        scheduler_file = tmp_path / "scheduler.json"
        env = {"JOB_MARKER": str(marker), **env}
        log = tmp_path / "scheduler.log"
        procs.append(_start([*python, "-m", "dask", "scheduler", "--host", "127.0.0.1",
                             "--port", "0", "--no-dashboard", "--scheduler-file",
                             str(scheduler_file)], log, **env))  # fmt: skip
        deadline = time.monotonic() + 120
        while not scheduler_file.exists():
            assert procs[0].poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the scheduler did not start"
            time.sleep(0.2)
        for i in range(2):
            procs.append(_start([*python, "-m", "dask", "worker", "--scheduler-file",
                                 str(scheduler_file), "--host", "127.0.0.1", "--nthreads", "1",
                                 "--no-dashboard", "--name", f"w{i}"],
                                tmp_path / f"worker{i}.log", **env))  # fmt: skip
        return scheduler_file

    yield start
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
    assert not marker.exists()


def test_dask_scheduler_and_workers_run_from_the_archive(cluster: object, dask_job: Path) -> None:
    from distributed import Client

    scheduler = cluster([sys.executable, str(dask_job)], PACKER_INTERPRETER="1")  # type: ignore[operator]
    with Client(scheduler_file=str(scheduler), timeout=60) as client:
        client.wait_for_workers(2, timeout=120)

        def encode(n: int) -> str:
            return __import__("jobmod.fast", fromlist=["encode"]).encode(n)

        futures = client.map(encode, range(20))
        assert [json.loads(x) for x in client.gather(futures)] == [
            {"n": n, "sq": n * n} for n in range(20)
        ]

        def where() -> list[str]:
            return __import__("jobmod.fast", fromlist=["where"]).where()

        for found in client.run(where).values():
            # The nanny's worker process is a multiprocessing child of the archive's: it
            # imports with the path it was handed, through zipimport (hence .pyc).
            assert found[0].startswith(str(dask_job) + "/jobmod/__init__.py"), found
            assert "/orjson/" in found[1] and not found[1].startswith(str(dask_job))
        assert len(client.run(where)) == 2


def test_dask_upload_file_takes_the_export_and_runs_nothing(
    cluster: object, spark_job: Path, tmp_path: Path
) -> None:
    """upload_file imports (and reloads) every top-level module of the zip on every worker:
    the export has the job's modules, and no stub, __main__ or runtime that would run. The
    workers are this environment's Python, which has dask and not the job."""
    from distributed import Client

    scheduler = cluster([sys.executable])  # type: ignore[operator]
    lib = export(spark_job, tmp_path / "lib.zip")
    with zipfile.ZipFile(lib) as zf:
        tops = {name.split("/")[0] for name in zf.namelist()}
    assert "jobmod" in tops and not tops & {"__main__.py", "__packer_main__.py", "_packer_runtime"}
    with Client(scheduler_file=str(scheduler), timeout=60) as client:
        client.wait_for_workers(2, timeout=120)

        def has_job() -> bool:
            import importlib.util

            return importlib.util.find_spec("jobmod") is not None

        assert set(client.run(has_job).values()) == {False}
        client.upload_file(str(lib))

        def encode(n: int) -> str:
            return __import__("jobmod.pure", fromlist=["encode"]).encode(n)

        got = client.gather(client.map(encode, range(5)))
        assert [json.loads(x) for x in got] == [{"n": n, "cube": n**3} for n in range(5)]
