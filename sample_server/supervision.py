"""The master's decisions, apart from its effects: which worker to start, signal or give up on.

:class:`Supervisor` is told what happened (a worker reported ready, a worker exited, time
passed, a reload or a stop was asked for) and answers with the actions to take
(:class:`Spawn`, :class:`Kill`, :class:`Halt`). It forks nothing and signals nothing itself,
so every decision is tested in process; ``supervisor.py`` carries the actions out.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field

__all__ = [
    "BOOT_FAILURES",
    "BOOT_TIMEOUT",
    "KILL_AFTER",
    "MAX_WORKERS",
    "Action",
    "BootGuard",
    "Halt",
    "Kill",
    "Spawn",
    "Supervisor",
    "WorkerState",
]

#: More workers than this is a typo, not a configuration: each is a process with its own event
#: loop, and even a 64-core machine is served by 64.
MAX_WORKERS = 256
#: Seconds a new worker has to report that it serves; past it, it is killed as failed.
BOOT_TIMEOUT = 10.0
#: Workers in a row that die (or hang) before serving, after which the master gives up.
BOOT_FAILURES = 5
#: Seconds a fast stop waits for workers before SIGKILL.
KILL_AFTER = 5.0
#: What a retiring or gracefully stopping worker gets on top of the graceful timeout to cut
#: its connections and exit, before SIGKILL.
EXIT_MARGIN = 2.0


@dataclass(frozen=True)
class Spawn:
    """Start a worker; *replaces*: the one it takes over from in a reload."""

    replaces: int | None = None


@dataclass(frozen=True)
class Kill:
    pid: int
    sig: int


@dataclass(frozen=True)
class Halt:
    """Give up: stop everything, exit non-zero, say *reason*."""

    reason: str


Action = Spawn | Kill | Halt


class BootGuard:
    """Back-off for workers that die before they serve, and when to stop trying.

    As gunicorn's arbiter halts on a worker that cannot boot: a broken worker is retried
    after 0.1, 0.2, 0.4... s (at most 2 s), and *limit* failures in a row end the master.
    One worker that serves resets the count.
    """

    def __init__(self, limit: int = BOOT_FAILURES, first: float = 0.1, most: float = 2.0) -> None:
        self.limit = limit
        self.first = first
        self.most = most
        self.failures = 0

    def failed(self) -> float | None:
        """A worker died at boot: the delay before the next try, or None to give up."""
        self.failures += 1
        if self.failures >= self.limit:
            return None
        return float(min(self.first * 2 ** (self.failures - 1), self.most))

    def succeeded(self) -> None:
        self.failures = 0


@dataclass
class WorkerState:
    pid: int
    boot_deadline: float
    ready: bool = False
    retiring: bool = False
    kill_at: float | None = None
    replaces: int | None = None
    #: Why it failed at boot, as the worker said it (or as the master saw it).
    failure: str = ""


@dataclass
class Supervisor:
    """The worker pool of one master: *target* workers, replaced when they die."""

    target: int
    graceful_timeout: float
    guard: BootGuard = field(default_factory=BootGuard)
    workers: dict[int, WorkerState] = field(default_factory=dict)
    #: Spawns waiting for their back-off: (due time, replaces).
    pending: list[tuple[float, int | None]] = field(default_factory=list)
    #: The old workers a reload has still to replace, in order.
    to_replace: list[int] = field(default_factory=list)
    stopping: str = ""  # "", "graceful" or "fast"
    serving: bool = False  # every first worker has reported ready once
    reloads_requested: int = 0
    reloads_done: int = 0

    @property
    def reloading(self) -> bool:
        return not self.stopping and (
            bool(self.to_replace)
            or any(replaces is not None for _, replaces in self.pending)
            or any(w.replaces is not None for w in self.workers.values() if not w.ready)
        )

    @property
    def done(self) -> bool:
        """Stopping, and no worker left."""
        return bool(self.stopping) and not self.workers

    def start(self) -> list[Action]:
        return [Spawn() for _ in range(self.target)]

    def spawned(self, pid: int, now: float, replaces: int | None = None) -> None:
        self.workers[pid] = WorkerState(pid, now + BOOT_TIMEOUT, replaces=replaces)

    def ready(self, pid: int, now: float) -> list[Action]:
        worker = self.workers.get(pid)
        if worker is None or worker.ready:
            return []
        worker.ready = True
        self.guard.succeeded()
        if self.stopping:  # started before the stop: it goes too
            return [Kill(pid, signal.SIGTERM if self.stopping == "fast" else signal.SIGQUIT)]
        if not self.serving and self._live() >= self.target:
            self.serving = True
        actions: list[Action] = []
        old = worker.replaces
        worker.replaces = None
        if old is not None:
            actions += self._retire(old, now)
            actions += self._next_replacement()
        return actions

    def exited(self, pid: int, now: float, why: str) -> list[Action]:
        """*pid* ended; *why* says how (an exit status, or what the worker reported)."""
        worker = self.workers.pop(pid, None)
        if worker is None:
            return []
        if pid in self.to_replace:  # died before its turn in a reload came
            self.to_replace.remove(pid)
        if self.stopping or worker.retiring:
            return []
        if worker.ready:
            return [Spawn()]  # a serving worker died: replaced at once
        return self.boot_failed(now, worker.replaces, worker.failure or why)

    def boot_failed(self, now: float, replaces: int | None, reason: str) -> list[Action]:
        """A worker could not be started (it died or hung before serving, or fork failed):
        try again after the back-off, or give up."""
        delay = self.guard.failed()
        if delay is None:
            return [Halt(f"workers fail at start ({self.guard.failures} in a row): {reason}")]
        self.pending.append((now + delay, replaces))
        return []

    def failure(self, pid: int, reason: str) -> None:
        """The worker said why it cannot serve (before it exits)."""
        if pid in self.workers:
            self.workers[pid].failure = reason

    def tick(self, now: float) -> list[Action]:
        """Deadlines: hung boots, workers past their exit time, spawns whose back-off is over."""
        actions: list[Action] = []
        for worker in self.workers.values():
            if not worker.ready and now >= worker.boot_deadline and worker.kill_at is None:
                worker.failure = worker.failure or f"did not serve within {BOOT_TIMEOUT:.0f} s"
                worker.kill_at = now
            if worker.kill_at is not None and now >= worker.kill_at:
                worker.kill_at = now + 1.0  # SIGKILL again a second later if it is still there
                actions.append(Kill(worker.pid, signal.SIGKILL))
        due = [entry for entry in self.pending if entry[0] <= now]
        if due and not self.stopping:
            self.pending = [entry for entry in self.pending if entry[0] > now]
            actions += [Spawn(replaces) for _, replaces in due]
        return actions

    def reload(self) -> bool:
        """Start a reload; False (and nothing done) when one is running or the master stops."""
        if self.stopping or self.reloading:
            return False
        self.to_replace = [w.pid for w in self.workers.values() if w.ready and not w.retiring]
        self.reloads_requested += 1
        return True

    def reload_actions(self) -> list[Action]:
        """The first step of the reload just accepted."""
        return self._next_replacement()

    def stop(self, graceful: bool, now: float) -> list[Action]:
        """Stop every worker: QUIT (finish what was received) or TERM; TERM after QUIT
        makes the stop fast."""
        if self.stopping == "fast" or (self.stopping == "graceful" and graceful):
            return []
        self.stopping = "graceful" if graceful else "fast"
        self.pending.clear()
        self.to_replace.clear()
        sig = signal.SIGQUIT if graceful else signal.SIGTERM
        wait = self.graceful_timeout + EXIT_MARGIN if graceful else KILL_AFTER
        actions: list[Action] = []
        for worker in self.workers.values():
            worker.kill_at = min(worker.kill_at or now + wait, now + wait)
            actions.append(Kill(worker.pid, sig))
        return actions

    def next_deadline(self) -> float | None:
        """When :meth:`tick` next has something to do; None: nothing is due (the master then
        sleeps until a signal or a report wakes it)."""
        times = [t for t, _ in self.pending]
        for worker in self.workers.values():
            if worker.kill_at is not None:
                times.append(worker.kill_at)
            elif not worker.ready:
                times.append(worker.boot_deadline)
        return min(times) if times else None

    def _live(self) -> int:
        return sum(1 for w in self.workers.values() if w.ready and not w.retiring)

    def _retire(self, pid: int, now: float) -> list[Action]:
        old = self.workers.get(pid)
        if old is None:
            return []
        old.retiring = True
        old.kill_at = now + self.graceful_timeout + EXIT_MARGIN
        return [Kill(pid, signal.SIGUSR1)]

    def _next_replacement(self) -> list[Action]:
        while self.to_replace:
            old = self.to_replace.pop(0)
            if old in self.workers:
                return [Spawn(replaces=old)]
        if self.reloads_done < self.reloads_requested:
            self.reloads_done += 1
        return []
