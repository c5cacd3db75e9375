"""The master's decisions, in process: reaping, respawning, back-off, reload sequencing."""

from __future__ import annotations

import signal
from collections.abc import Iterator

from sample_server.supervision import (
    BOOT_FAILURES,
    BOOT_TIMEOUT,
    KILL_AFTER,
    BootGuard,
    Halt,
    Kill,
    Spawn,
    Supervisor,
)


class Pool:
    """A supervisor with the effects played by hand: pids handed out in order."""

    def __init__(self, workers: int = 2, graceful: float = 10.0) -> None:
        self.sup = Supervisor(workers, graceful)
        self.pids: Iterator[int] = iter(range(100, 10_000))
        self.now = 0.0

    def carry_out(self, actions: list[Spawn | Kill | Halt]) -> list[int]:
        """Spawn what is asked; return the new pids."""
        new = []
        for action in actions:
            if isinstance(action, Spawn):
                pid = next(self.pids)
                self.sup.spawned(pid, self.now, action.replaces)
                new.append(pid)
        return new

    def boot(self) -> list[int]:
        pids = self.carry_out(self.sup.start())
        for pid in pids:
            self.carry_out(self.sup.ready(pid, self.now))
        return pids


def test_start_spawns_the_target_and_serves_once_all_are_ready() -> None:
    pool = Pool(3)
    pids = pool.carry_out(pool.sup.start())
    assert len(pids) == 3 and not pool.sup.serving
    pool.sup.ready(pids[0], 0)
    pool.sup.ready(pids[1], 0)
    assert not pool.sup.serving
    pool.sup.ready(pids[2], 0)
    assert pool.sup.serving


def test_a_serving_worker_that_dies_is_replaced_at_once() -> None:
    pool = Pool()
    first, _ = pool.boot()
    assert pool.sup.exited(first, 5.0, "killed by signal 9") == [Spawn()]
    assert first not in pool.sup.workers
    assert pool.sup.exited(first, 5.0, "again") == []  # reaped once only


def test_boot_failures_back_off_then_give_up_in_one_line() -> None:
    pool = Pool(1)
    pool.carry_out(pool.sup.start())
    delays = []
    for attempt in range(BOOT_FAILURES):
        pid = next(iter(pool.sup.workers))
        pool.sup.failure(pid, "RuntimeError: no loop")
        actions = pool.sup.exited(pid, pool.now, "exit status 1")
        if attempt < BOOT_FAILURES - 1:
            assert actions == [] and pool.sup.tick(pool.now) == []  # not before the back-off
            due = pool.sup.pending[0][0]
            delays.append(due - pool.now)
            pool.now = due
            pool.carry_out(pool.sup.tick(pool.now))
        else:
            assert actions == [
                Halt(f"workers fail at start ({BOOT_FAILURES} in a row): RuntimeError: no loop")
            ]
    assert delays == sorted(delays) and delays[0] > 0 and len(set(delays)) == len(delays)


def test_a_worker_that_serves_resets_the_boot_failure_count() -> None:
    guard = BootGuard(limit=3)
    assert guard.failed() is not None and guard.failed() is not None
    guard.succeeded()
    assert guard.failed() is not None and guard.failed() is not None
    assert guard.failed() is None


def test_a_hung_boot_is_killed_and_counts_as_a_failure() -> None:
    pool = Pool(1)
    (pid,) = pool.carry_out(pool.sup.start())
    assert pool.sup.tick(BOOT_TIMEOUT - 0.1) == []
    assert pool.sup.tick(BOOT_TIMEOUT) == [Kill(pid, signal.SIGKILL)]
    assert pool.sup.workers[pid].failure == f"did not serve within {BOOT_TIMEOUT:.0f} s"
    assert pool.sup.exited(pid, BOOT_TIMEOUT, "killed by signal 9") == []
    assert pool.sup.guard.failures == 1 and len(pool.sup.pending) == 1


def test_reload_replaces_one_worker_at_a_time_new_one_first() -> None:
    pool = Pool(2)
    old = pool.boot()
    assert pool.sup.reload()
    (new1,) = pool.carry_out(pool.sup.reload_actions())
    assert pool.sup.reloading and not pool.sup.workers[old[0]].retiring
    # The new worker serves: only then is the old one retired, and the next one started.
    actions = pool.sup.ready(new1, 1.0)
    assert actions[0] == Kill(old[0], signal.SIGUSR1)
    (new2,) = pool.carry_out(actions)
    assert pool.sup.workers[old[0]].retiring and not pool.sup.workers[old[1]].retiring
    assert pool.sup.ready(new2, 2.0) == [Kill(old[1], signal.SIGUSR1)]
    assert not pool.sup.reloading and pool.sup.reloads_done == 1
    # A retiring worker that exits is not replaced.
    assert pool.sup.exited(old[0], 3.0, "exit status 0") == []


def test_a_second_reload_during_one_is_refused_not_merged() -> None:
    pool = Pool(2)
    pool.boot()
    assert pool.sup.reload()
    pool.carry_out(pool.sup.reload_actions())
    assert not pool.sup.reload()
    assert pool.sup.reloads_requested == 1


def test_a_retiring_worker_past_the_graceful_timeout_is_killed() -> None:
    pool = Pool(1, graceful=3.0)
    (old,) = pool.boot()
    pool.sup.reload()
    (new,) = pool.carry_out(pool.sup.reload_actions())
    pool.sup.ready(new, 10.0)
    assert pool.sup.tick(12.0) == []
    assert Kill(old, signal.SIGKILL) in pool.sup.tick(15.0)


def test_stop_during_a_reload_is_honoured_at_once() -> None:
    pool = Pool(2)
    old = pool.boot()
    pool.sup.reload()
    (new,) = pool.carry_out(pool.sup.reload_actions())
    actions = pool.sup.stop(graceful=False, now=1.0)
    assert sorted(a.pid for a in actions if isinstance(a, Kill)) == sorted([*old, new])
    assert all(a.sig == signal.SIGTERM for a in actions if isinstance(a, Kill))
    assert not pool.sup.reloading and not pool.sup.reload()
    # Nobody is replaced any more, and stragglers are killed after KILL_AFTER.
    assert pool.sup.exited(old[0], 1.5, "exit status 0") == []
    assert Kill(old[1], signal.SIGKILL) in pool.sup.tick(1.0 + KILL_AFTER)
    for pid in [old[1], new]:
        pool.sup.exited(pid, 7.0, "killed by signal 9")
    assert pool.sup.done


def test_term_after_quit_makes_the_stop_fast() -> None:
    pool = Pool(1, graceful=30.0)
    (pid,) = pool.boot()
    assert pool.sup.stop(graceful=True, now=0.0) == [Kill(pid, signal.SIGQUIT)]
    assert pool.sup.stop(graceful=True, now=1.0) == []
    assert pool.sup.stop(graceful=False, now=1.0) == [Kill(pid, signal.SIGTERM)]
    assert Kill(pid, signal.SIGKILL) in pool.sup.tick(1.0 + KILL_AFTER)


def test_an_old_worker_that_dies_before_its_turn_is_not_replaced_twice() -> None:
    pool = Pool(2)
    old = pool.boot()
    pool.sup.reload()
    (new1,) = pool.carry_out(pool.sup.reload_actions())
    # old[1], still waiting for its turn, dies: replaced as any serving worker...
    assert pool.sup.exited(old[1], 1.0, "killed by signal 9") == [Spawn()]
    # ...and the reload does not try to replace it again.
    assert pool.sup.ready(new1, 1.0) == [Kill(old[0], signal.SIGUSR1)]
    assert not pool.sup.reloading and pool.sup.reloads_done == 1


def test_nothing_is_due_while_every_worker_serves() -> None:
    # A master with a deadline in the past would spin instead of sleeping until woken.
    pool = Pool(2)
    pids = pool.carry_out(pool.sup.start())
    assert pool.sup.next_deadline() == BOOT_TIMEOUT
    for pid in pids:
        pool.sup.ready(pid, 1.0)
    assert pool.sup.next_deadline() is None
    pool.sup.stop(graceful=False, now=2.0)
    assert pool.sup.next_deadline() == 2.0 + KILL_AFTER
