"""Tables at once (``parallel: N``): when each of a run's load tasks starts, on up to N threads.

The runner hands over the run's load tasks and the function that runs one (``runner._run_task``, still
the one place that catches a failing task and writes its audit row); this module only decides when each
task starts and gathers the outcomes:

- at most ``workers`` tasks run at once, started in plan order; a task starts when the tasks it waits for
  (``Task.after``: the table its relationships gate reads) have finished, and no running task shares one
  of its ``Task.exclusive`` keys (a connection that takes one writer at a time: a SQLite file, a
  connector that keeps a single session);
- after a failing load without ``continue_on_error`` no further task starts; the loads already running
  finish. Each load is atomic (it commits whole, with its state, or leaves its table as it was), so they
  are like the tables a serial run loaded before its failure. With ``continue_on_error`` the others load;
- on Ctrl-C or SIGTERM no further task starts and every running load rolls back: the main thread gets the
  KeyboardInterrupt, the loads on the other threads see :func:`utilities.interrupts.check` at their next
  chunk or before their commit, close their audit rows and unwind; then KeyboardInterrupt is raised to
  the runner, which closes the run as interrupted (exit 130).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from script_factory.outcome import SUCCESS, TaskOutcome
from script_factory.task import Task
from utilities import interrupts, logs

logger = logging.getLogger("script_factory.runner")


def run_at_once(
    tasks: Sequence[Task], workers: int, run_one: Callable[[Task], TaskOutcome], outcomes: list[TaskOutcome]
) -> bool:
    """Run ``tasks`` on up to ``workers`` threads, appending each outcome to ``outcomes`` as it finishes.

    Returns False when a task failed without ``continue_on_error`` (the run stops after the loads).
    Raises KeyboardInterrupt after the running loads have unwound when the run was stopped, and an error
    that escaped ``run_one`` (the runner's own failure, not a task's) once every thread has finished."""
    schedule = _Schedule(tasks, workers)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="load")
    try:
        schedule.run(pool, run_one, outcomes)
    except KeyboardInterrupt:
        interrupts.request()  # also a Ctrl-C that did not come through the handler: the threads must see it
        schedule.stop("the run was interrupted")
    finally:
        schedule.drain(outcomes)
        pool.shutdown(wait=True)
    if interrupts.requested() or schedule.interrupted:
        raise KeyboardInterrupt
    if schedule.errors:
        raise schedule.errors[0]
    return not schedule.failed


class _Schedule:
    """Which tasks wait, run and have finished; used by the main thread only."""

    def __init__(self, tasks: Sequence[Task], workers: int) -> None:
        self.pending = list(tasks)
        self.names = {t.name for t in tasks}
        self.workers = workers
        self.running: dict[Future[TaskOutcome], Task] = {}
        self.finished: set[str] = set()
        self.stopped = False
        self.failed = False
        self.interrupted = False
        self.errors: list[BaseException] = []

    def run(
        self, pool: ThreadPoolExecutor, run_one: Callable[[Task], TaskOutcome], outcomes: list[TaskOutcome]
    ) -> None:
        while self.pending or self.running:
            if not self.stopped:
                for task in self._startable():
                    self.pending.remove(task)
                    self.running[pool.submit(_tagged, run_one, task)] = task
            if not self.running:
                return  # stopped, nothing left running
            done, _ = wait(self.running, return_when=FIRST_COMPLETED)
            for future in done:
                self._collect(future, outcomes)

    def drain(self, outcomes: list[TaskOutcome]) -> None:
        """Wait for every running task (a second Ctrl-C or SIGTERM does not abandon them half way)."""
        while self.running:
            try:
                done, _ = wait(self.running, return_when=FIRST_COMPLETED)
            except KeyboardInterrupt:
                self.interrupted = True
                continue
            for future in done:
                self._collect(future, outcomes)

    def stop(self, reason: str) -> None:
        if not self.stopped and self.pending:
            logger.warning(
                "%s: not starting %s; the %d table(s) loading finish or roll back, each whole",
                reason,
                ", ".join(t.name for t in self.pending),
                len(self.running),
            )
        self.stopped = True
        self.pending.clear()

    def _startable(self) -> list[Task]:
        started: list[Task] = []
        held = {key for task in self.running.values() for key in task.exclusive}
        for task in self.pending:
            if len(self.running) + len(started) >= self.workers:
                break
            waits = any(name in self.names and name not in self.finished for name in task.after)
            if waits or task.exclusive & held:
                continue
            started.append(task)
            held |= task.exclusive
        return started

    def _collect(self, future: Future[TaskOutcome], outcomes: list[TaskOutcome]) -> None:
        task = self.running.pop(future)
        self.finished.add(task.name)
        try:
            outcome = future.result()
        except KeyboardInterrupt:
            interrupts.request()  # the loads still running stop too
            self.interrupted = True
            self.stop("the run was interrupted")
            return
        except Exception as exc:  # noqa: BLE001 - not a task's failure (run_one records those): raised after the drain
            self.errors.append(exc)
            self.stop(f"{task.name}: the runner failed")
            return
        outcomes.append(outcome)
        if outcome.status != SUCCESS and not task.continue_on_error:
            self.failed = True
            self.stop(f"{task.name} failed")


def _tagged(run_one: Callable[[Task], TaskOutcome], task: Task) -> TaskOutcome:
    """``run_one(task)`` with every line it logs on this thread naming its table."""
    with logs.tagged(task.target_table or task.name):
        return run_one(task)
