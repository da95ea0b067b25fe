"""Random command sequences against the Task aggregate, checked against a plain reference model."""
from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from uuid import uuid4

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from domain.errors import InvalidField, InvalidStatusChange, TaskAlreadyClaimed, TaskTrailError
from domain.status import ALLOWED_TRANSITIONS, TaskStatus
from domain.task import Task

S = TaskStatus

queues = st.sampled_from(["default", "gpu", "cpu"])
workers = st.sampled_from(["worker-1", "worker-2"])
forces = st.booleans()
# What a client may ask dequeue to restore: nothing, any status, or a name that is no status.
dequeue_targets = st.sampled_from([None, "", *(s.value for s in TaskStatus), "sleeping"])


@dataclass
class Model:
    """What the task should look like, kept by hand."""

    status: TaskStatus = S.created
    started: str | None = None  # times: the `at` of the event that should have set them
    ended: str | None = None
    published: str | None = None
    queue: str | None = None
    enqueue_status: str | None = None
    last_worker: str | None = None

    def may_move_to(self, new: TaskStatus, force: bool) -> bool:
        if force or new == self.status:
            return True
        return new in ALLOWED_TRANSITIONS[self.status]


class TaskLifecycle(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.task: Task
        self.model = Model()
        self.events: list = []

    @initialize()
    def create(self) -> None:
        self.task = Task.create(uuid4(), {"name": "train", "type": "training"}, "alice")
        self.events.extend(self.task.collect_events())

    # -- the check every rule shares ----------------------------------------------------------
    def attempt(
        self,
        predicted: bool,
        command: Callable[[], None],
        event_class: type | list[type],
        refusal: type[TaskTrailError] = InvalidStatusChange,
    ) -> Task.Event | None:
        """Run `command`; check it was accepted exactly when the model predicts.

        Returns the last event recorded if accepted (`event_class` may list several), None if refused.
        """
        expected = event_class if isinstance(event_class, list) else [event_class]
        doc_before = copy.deepcopy(self.task.doc)
        version_before = self.task.version
        try:
            command()
        except TaskTrailError as error:
            new_events = self.task.collect_events()
            assert not predicted, f"refused, but the model predicts acceptance: {error!r}"
            assert isinstance(error, refusal), f"expected {refusal.__name__}, got {error!r}"
            assert new_events == []
            assert self.task.version == version_before
            assert self.task.doc == doc_before
            return None
        new_events = self.task.collect_events()
        assert predicted, f"accepted, but the model predicts refusal (status {self.model.status.value})"
        assert [type(event) for event in new_events] == expected
        assert self.task.version == version_before + len(expected)
        self.events.extend(new_events)
        return new_events[-1]

    def end_run(self, new: TaskStatus, command: Callable[..., None], event_class: type, force: bool) -> None:
        predicted = self.model.may_move_to(new, force)
        event = self.attempt(predicted, lambda: command("user", force=force), event_class)
        if event is not None:
            self.model.status = new
            self.model.ended = event.at

    # -- rules ---------------------------------------------------------------------------------
    @rule(queue=queues, force=forces)
    def enqueue(self, queue: str, force: bool) -> None:
        already_queued = self.model.status == S.queued
        predicted = self.model.may_move_to(S.queued, force) and (force or not already_queued)
        command = lambda: self.task.enqueue(queue, "user", force=force)  # noqa: E731
        if self.attempt(predicted, command, Task.Enqueued) is not None:
            # A forced re-enqueue keeps the status the task had before it was first queued.
            if already_queued:
                self.model.enqueue_status = self.model.enqueue_status or S.created.value
            else:
                self.model.enqueue_status = self.model.status.value
            self.model.status = S.queued
            self.model.queue = queue

    @rule(new_status=dequeue_targets)
    def dequeue(self, new_status: str | None) -> None:
        valid_target = new_status in (None, "") or new_status in {s.value for s in TaskStatus}
        queued = self.model.status == S.queued
        refusal = InvalidField if queued else InvalidStatusChange
        predicted = queued and valid_target
        command = lambda: self.task.dequeue("user", new_status=new_status)  # noqa: E731
        if self.attempt(predicted, command, Task.Dequeued, refusal) is not None:
            self.model.status = S(new_status or self.model.enqueue_status or "created")
            self.model.queue = None
            self.model.enqueue_status = None

    @rule(force=forces)
    def start(self, force: bool) -> None:
        predicted = self.model.may_move_to(S.in_progress, force)
        event = self.attempt(predicted, lambda: self.task.start("user", force=force), Task.Started)
        if event is not None:
            self.model.status = S.in_progress
            self.model.started = self.model.started or event.at

    @rule(worker=workers)
    def claim(self, worker: str) -> None:
        predicted = self.model.status == S.queued
        event = self.attempt(predicted, lambda: self.task.claim(worker), Task.Started, TaskAlreadyClaimed)
        if event is not None:
            self.model.status = S.in_progress
            self.model.started = self.model.started or event.at
            self.model.last_worker = worker

    @rule(force=forces)
    def stop(self, force: bool) -> None:
        asks_worker = self.model.status == S.in_progress and self.model.last_worker is not None and not force
        if asks_worker:
            assert self.attempt(True, lambda: self.task.stop("user"), Task.StopRequested) is not None
            assert self.task.status == S.in_progress
            assert self.task.doc["status_message"] == "stopping"
            return
        self.end_run(S.stopped, self.task.stop, Task.Stopped, force)

    @rule(force=forces)
    def stopped(self, force: bool) -> None:
        self.end_run(S.stopped, self.task.stopped, Task.Stopped, force)

    @rule(force=forces)
    def fail(self, force: bool) -> None:
        self.end_run(S.failed, self.task.fail, Task.Failed, force)

    @rule(force=forces)
    def complete(self, force: bool) -> None:
        self.end_run(S.completed, self.task.complete, Task.Completed, force)

    @rule(force=forces)
    def close(self, force: bool) -> None:
        predicted = self.model.may_move_to(S.closed, force)
        if self.attempt(predicted, lambda: self.task.close("user", force=force), Task.Closed) is not None:
            self.model.status = S.closed

    @rule(force=forces)
    def publish(self, force: bool) -> None:
        # Publishing goes through `publishing`; a published task is not published again without force.
        predicted = force or S.published in ALLOWED_TRANSITIONS[self.model.status]
        event = self.attempt(predicted, lambda: self.task.publish("user", force=force),
                             [Task.PublishingStarted, Task.Published])
        if event is not None:
            self.model.status = S.published
            self.model.published = event.at

    @rule(force=forces)
    def reset(self, force: bool) -> None:
        predicted = self.model.may_move_to(S.created, force)
        if self.attempt(predicted, lambda: self.task.reset("user", force=force), Task.Reset) is not None:
            self.model = Model()

    # -- invariants ----------------------------------------------------------------------------
    @invariant()
    def status_matches_the_model(self) -> None:
        assert self.task.status == self.model.status
        assert self.task.doc["status"] == self.model.status.value

    @invariant()
    def run_fields_match_the_model(self) -> None:
        doc = self.task.doc
        assert doc["started"] == self.model.started
        assert doc["completed"] == self.model.ended
        assert doc["published"] == self.model.published
        assert self.task.queue == self.model.queue
        assert doc["enqueue_status"] == self.model.enqueue_status
        assert doc["last_worker"] == self.model.last_worker

    @invariant()
    def replaying_all_events_rebuilds_the_same_task(self) -> None:
        assert self.task.collect_events() == []  # every rule collected its events
        rebuilt = None
        for event in self.events:
            rebuilt = event.mutate(rebuilt)
        assert rebuilt is not None
        assert rebuilt.version == self.task.version == len(self.events)
        assert rebuilt.doc == self.task.doc


TaskLifecycle.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_task_lifecycle = TaskLifecycle.TestCase
