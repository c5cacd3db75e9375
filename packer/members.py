"""Produce archive members: read, compile to bytecode, hash and compress, in parallel when the
build is big enough to repay starting worker processes."""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import importlib.util
import marshal
import os
import signal
import sys
import threading
import zlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .buildcache import HERE, MIN_PAYLOAD, BuildCache, default_cache
from .canonical import canonical
from .errors import SourceError

if TYPE_CHECKING:
    from concurrent.futures import Future
from .zipwriter import FILE_MODE, Member, assemble, deflate, prepare

__all__ = ["MemberJob", "produce_members"]

#: Below this much work (bytes read, with sources to compile weighted by how much slower
#: compiling is than deflating) members are produced in this process: starting workers costs
#: more than it saves.
PARALLEL_THRESHOLD = 8 << 20
_COMPILE_WEIGHT = 10
#: Members travel to and from workers in batches of about this many bytes, or this many jobs.
_BATCH_BYTES = 2 << 20
_BATCH_JOBS = 64
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class MemberJob:
    """One member to produce: from a file, or from bytes already in memory."""

    name: str
    path: Path | None
    data: bytes | None
    mode: int
    compile: bool
    size: int = 0
    #: Where the bytecode goes: beside the source (for zipimport) unless given.
    pyc_name: str | None = None
    #: The targets whose interpreters import it (indexes); empty: every one.
    targets: tuple[int, ...] = ()


def produce(job: MemberJob, level: int | None) -> list[Member]:
    """The member for *job*, and its bytecode member when it compiles."""
    if job.data is not None:
        data = job.data
    else:
        assert job.path is not None
        try:
            data = job.path.read_bytes()
        except OSError as exc:
            raise SourceError(f"{job.path}: cannot read: {exc.strerror}") from None
    members = [_prepare(job.name, data, job.mode, level)]
    if job.compile:
        pyc = bytecode(job.name, data)
        if pyc is not None:
            members.append(_prepare(job.pyc_name or job.name + "c", pyc, FILE_MODE, level))
    return members


def _prepare(name: str, data: bytes, mode: int, level: int | None) -> Member:
    """:func:`prepare`, with the deflate stream from the build cache when it has it.

    A cached stream is used only when it inflates to *data* again: inflating is several
    times cheaper than deflating, and no entry can then put other bytes in an archive.
    """
    cache = _build_cache()
    if cache is None or level is None or len(data) < MIN_PAYLOAD:
        return prepare(name, data, mode, level)
    digest = hashlib.sha256(data).hexdigest()
    packed = cache.get_payload(digest, level)
    if packed is not None:
        try:
            fits = zlib.decompress(packed, -15) == data
        except zlib.error:
            fits = False
        if not fits:
            packed = None
    if packed is None:
        packed = deflate(data, level)
        cache.put_payload(digest, level, packed)
    return assemble(name, data, mode, digest, packed)


_compile_lock = threading.Lock()


def bytecode(name: str, source: bytes) -> bytes | None:
    """An unchecked hash-based .pyc (PEP 552) for *source*, or None if it does not compile.

    Hash-based, so no timestamp goes in; unchecked, so zipimport trusts it without reading the
    source. The code object's file name is the member name, which is what tracebacks show.
    Compiling holds a lock: marshal's output can depend on reference counts, which a
    concurrent compile in another thread of this process could change; :func:`canonical`
    then takes out what the rest of the process could have changed.
    """
    cache = _build_cache()
    if cache is not None:
        cached = cache.get_pyc(HERE, name, source)
        if cached is not None:
            return cached
    with _compile_lock:
        try:
            code = compile(source, name, "exec", dont_inherit=True, optimize=0)
        except (SyntaxError, ValueError):
            return None
        body = canonical(marshal.dumps(code))
    flags = (0b01).to_bytes(4, "little")
    pyc = importlib.util.MAGIC_NUMBER + flags + importlib.util.source_hash(source) + body
    if cache is not None:
        cache.put_pyc(HERE, name, source, pyc)
    return pyc


_cache: BuildCache | None = None
_cache_looked_up = False


def _build_cache() -> BuildCache | None:
    """The cache between builds (looked up once a process; workers inherit it)."""
    global _cache, _cache_looked_up
    if not _cache_looked_up:
        _cache = default_cache()
        _cache_looked_up = True
    return _cache


def _produce_batch(jobs: list[MemberJob], level: int | None) -> list[list[Member]]:
    return [produce(job, level) for job in jobs]


def _init_worker(parent: int) -> None:
    # Ctrl-C reaches the whole process group; the parent alone decides what happens then.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        # Die with the parent even when it is killed outright: a forked worker holds both ends
        # of its job pipe, so it would never see end-of-file and would wait forever.
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        os._exit(1)  # the parent died before we could ask to follow it


def _work(job: MemberJob) -> int:
    return job.size * (_COMPILE_WEIGHT if job.compile else 1)


def produce_members(
    jobs: list[MemberJob], level: int | None, workers: int | None = None
) -> Iterator[tuple[MemberJob, list[Member]]]:
    """Yield ``(job, members)`` for every job, in job order.

    Large builds fan out to worker processes (compiling and deflating hold the GIL too often
    for threads to help); the output is the same bytes either way. Workers are forked: a
    spawned worker would re-run the caller's ``__main__`` (an unguarded build script would
    build again in every worker). Forking a process that runs other threads can deadlock, so
    a caller with threads of its own gets the in-process path.
    """
    count = workers if workers is not None else (os.cpu_count() or 1)
    if (
        count < 2
        or threading.active_count() > 1
        or sum(_work(job) for job in jobs) < PARALLEL_THRESHOLD
    ):
        for job in jobs:
            yield job, produce(job, level)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    batches = _batches(jobs)
    # A KeyboardInterrupt raised at an arbitrary point inside the executor's machinery can
    # leave it deadlocked; note Ctrl-C instead, and raise it between batches.
    interrupted: list[int] = []
    previous = signal.getsignal(signal.SIGINT)
    if previous is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, lambda signum, frame: interrupted.append(signum))
    context = multiprocessing.get_context("fork")
    pool = ProcessPoolExecutor(
        max_workers=count, mp_context=context, initializer=_init_worker, initargs=(os.getpid(),)
    )
    pending: deque[tuple[list[MemberJob], Future[list[list[Member]]]]] = deque()
    try:
        for batch in batches:
            pending.append((batch, pool.submit(_produce_batch, batch, level)))
            if len(pending) >= count * 2:
                yield from _drain_one(pending, interrupted)
        while pending:
            yield from _drain_one(pending, interrupted)
        if interrupted:
            raise KeyboardInterrupt
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        signal.signal(signal.SIGINT, previous)


def _drain_one(
    pending: deque[tuple[list[MemberJob], Future[list[list[Member]]]]], interrupted: list[int]
) -> Iterator[tuple[MemberJob, list[Member]]]:
    batch, future = pending.popleft()
    results = future.result()
    if interrupted:
        raise KeyboardInterrupt
    yield from zip(batch, results, strict=True)


def _batches(jobs: list[MemberJob]) -> list[list[MemberJob]]:
    batches: list[list[MemberJob]] = []
    current: list[MemberJob] = []
    size = 0
    for job in jobs:
        current.append(job)
        size += _work(job)
        if size >= _BATCH_BYTES or len(current) >= _BATCH_JOBS:
            batches.append(current)
            current, size = [], 0
    if current:
        batches.append(current)
    return batches
