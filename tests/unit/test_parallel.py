"""The schedule of tables at once (script_factory/parallel.py), with tasks that only sleep and count."""

from __future__ import annotations

import threading
import time
from functools import partial

import pytest

from script_factory.outcome import FAILED, SUCCESS, TaskOutcome
from script_factory.parallel import run_at_once
from script_factory.task import Task
from utilities import interrupts


def _task(name: str, after: tuple[str, ...] = (), exclusive: frozenset[str] = frozenset(), **kw: bool) -> Task:
    return Task(f"load:{name}", "load", partial(print), target_table=name, after=after, exclusive=exclusive, **kw)


class Recorder:
    """Runs a task by sleeping; records the order of starts and ends and the most running at once."""

    def __init__(self, failing: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.failing = failing
        self.events: list[str] = []
        self.running = 0
        self.most = 0
        self.lock = threading.Lock()

    def __call__(self, task: Task) -> TaskOutcome:
        with self.lock:
            self.events.append(f"start {task.target_table}")
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(0.05)
        with self.lock:
            self.running -= 1
            self.events.append(f"end {task.target_table}")
        return TaskOutcome(task, FAILED if task.target_table in self.failing else SUCCESS, 0.05)


def test_at_most_n_run_at_once_and_every_outcome_is_kept() -> None:
    recorder, outcomes = Recorder(), []
    assert run_at_once([_task(f"t{i}") for i in range(6)], 3, recorder, outcomes)
    assert recorder.most == 3
    assert sorted(o.task.target_table for o in outcomes) == [f"t{i}" for i in range(6)]


def test_a_task_waits_for_the_tasks_it_comes_after_and_shared_keys_take_turns() -> None:
    recorder = Recorder()
    tasks = [_task("a"), _task("b", after=("load:a",)), _task("c", exclusive=frozenset({"w"}))]
    tasks.append(_task("d", exclusive=frozenset({"w"})))
    assert run_at_once(tasks, 4, recorder, [])
    events = recorder.events
    assert events.index("end a") < events.index("start b")
    assert events.index("end c") < events.index("start d")


def test_after_a_failure_nothing_more_starts_unless_the_failing_task_goes_on() -> None:
    recorder, outcomes = Recorder(failing={"t0"}), []
    assert not run_at_once([_task(f"t{i}") for i in range(5)], 2, recorder, outcomes)
    assert sorted(o.task.target_table for o in outcomes) == ["t0", "t1"]  # t1 was running: it finished

    recorder, outcomes = Recorder(failing={"t0"}), []
    tasks = [_task("t0", continue_on_error=True), *(_task(f"t{i}") for i in range(1, 5))]
    assert run_at_once(tasks, 2, recorder, outcomes)
    assert len(outcomes) == 5


def test_an_interruption_in_a_load_is_raised_after_the_others_finish(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(interrupts, "_requested", threading.Event())  # the request it notes ends with the test
    finished: list[str] = []

    def run_one(task: Task) -> TaskOutcome:
        if task.target_table == "t0":
            raise KeyboardInterrupt
        time.sleep(0.05)
        finished.append(str(task.target_table))
        return TaskOutcome(task, SUCCESS, 0.05)

    with pytest.raises(KeyboardInterrupt):
        run_at_once([_task(f"t{i}") for i in range(4)], 2, run_one, [])
    assert finished == ["t1"]  # running when t0 stopped: it finished; t2 and t3 never started
    assert interrupts.requested()  # the other threads' loads see it at their next chunk
