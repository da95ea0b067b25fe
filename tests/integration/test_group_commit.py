"""GroupCommitWriter on a real event store (SQLite and PostgreSQL): batching, ordering, refusals, races."""
from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID, uuid4

import pytest

from domain.errors import InvalidStatusChange, TaskAlreadyClaimed
from domain.status import TaskStatus
from domain.task import Task
from gateway.group_commit import GroupCommitWriter, Outcome, UnitOfWork
from gateway.task_commands import task_document
from tasktrail.application import TaskTrail

FIELDS = {"name": "train", "type": "training"}


@pytest.fixture
def writer(app: TaskTrail) -> Iterator[GroupCommitWriter]:
    group_commit = GroupCommitWriter(app)
    group_commit.start()
    try:
        yield group_commit
    finally:
        group_commit.close()


# -- commands, built as gateway/task_commands.py builds them -------------------------------------
def create(writer: GroupCommitWriter, task_id: UUID | None = None, name: str = "train"):
    task_id = task_id or uuid4()

    def command(work: UnitOfWork) -> dict[str, Any]:
        task = Task.create(task_id, {**FIELDS, "name": name}, "alice")
        work.add(task)
        return task_document(task)

    return writer.execute(command)


def change(writer: GroupCommitWriter, task_id: UUID, method: Callable[[Task], None]):
    def command(work: UnitOfWork) -> dict[str, Any]:
        task = work.get_task(task_id.hex)
        method(task)
        return task_document(task)

    return writer.execute(command)


def enqueue(writer: GroupCommitWriter, task_id: UUID, queue: str = "default"):
    return change(writer, task_id, lambda task: task.enqueue(queue, actor="alice"))


def claim(writer: GroupCommitWriter, task_id: UUID, worker: str):
    return change(writer, task_id, lambda task: task.claim(worker))


def complete(writer: GroupCommitWriter, task_id: UUID, worker: str):
    return change(writer, task_id, lambda task: task.complete(worker, reason="done"))


async def queued_task(writer: GroupCommitWriter) -> UUID:
    task_id = uuid4()
    await create(writer, task_id)
    await enqueue(writer, task_id)
    return task_id


@asynccontextmanager
async def one_batch(writer: GroupCommitWriter) -> AsyncIterator[None]:
    """Holds the writer thread busy in a batch of its own while the block submits commands.

    Commands submitted inside the block (as tasks, e.g. with asyncio.ensure_future) are all
    waiting in the inbox when the thread is released, so they form exactly the next batch.
    """
    entered, release = threading.Event(), threading.Event()

    def gate(work: UnitOfWork) -> None:
        entered.set()
        release.wait(10)

    gated = asyncio.ensure_future(writer.execute(gate))
    try:
        assert await asyncio.to_thread(entered.wait, 10), "the writer thread never took the gate command"
        yield
        await asyncio.sleep(0)  # let the submitted tasks put their commands into the inbox
    finally:
        release.set()
        await gated


def stored(app: TaskTrail, task_id: UUID) -> Task:
    return app.get_task(task_id.hex)


def split(results: list[Any]) -> tuple[list[Outcome], list[BaseException]]:
    winners = [result for result in results if isinstance(result, Outcome)]
    losers = [result for result in results if not isinstance(result, Outcome)]
    return winners, losers


# -- tests ---------------------------------------------------------------------------------------
async def test_concurrent_creates_are_grouped_into_fewer_batches(app: TaskTrail, writer: GroupCommitWriter) -> None:
    task_ids = [uuid4() for _ in range(200)]

    outcomes = await asyncio.gather(*(create(writer, task_id, name=f"t{n}") for n, task_id in enumerate(task_ids)))

    assert [outcome.result["id"] for outcome in outcomes] == [task_id.hex for task_id in task_ids]
    assert all(outcome.updated == 1 and outcome.result["status"] == "created" for outcome in outcomes)
    assert writer.commands == 200
    assert writer.batches < writer.commands
    notifications = app.recorder.select_notifications(0, 1000, inclusive_of_start=False)
    assert len(notifications) == 200
    assert {n.originator_id for n in notifications} == set(task_ids)
    assert stored(app, task_ids[123]).doc["name"] == "t123"


async def test_commands_on_one_task_in_one_batch_apply_in_order(app: TaskTrail, writer: GroupCommitWriter) -> None:
    task_id = uuid4()
    async with one_batch(writer):
        futures = [
            asyncio.ensure_future(create(writer, task_id)),
            asyncio.ensure_future(enqueue(writer, task_id)),
            asyncio.ensure_future(claim(writer, task_id, "worker-1")),
            asyncio.ensure_future(complete(writer, task_id, "worker-1")),
        ]
    batches = writer.batches

    outcomes = await asyncio.gather(*futures)

    assert writer.batches == batches + 1, "the four commands were not saved in one batch"
    assert [outcome.result["status"] for outcome in outcomes] == ["created", "queued", "in_progress", "completed"]
    assert [[type(event) for event in outcome.events] for outcome in outcomes] == [
        [Task.Created], [Task.Enqueued], [Task.Started], [Task.Completed]
    ]
    task = stored(app, task_id)
    assert task.status is TaskStatus.completed
    assert task.version == 4
    assert [event.originator_version for event in app.task_history(task_id.hex)] == [1, 2, 3, 4]


async def test_a_refused_command_fails_alone_and_the_rest_of_its_batch_commits(
    app: TaskTrail, writer: GroupCommitWriter
) -> None:
    created_id, other_id, new_id = uuid4(), uuid4(), uuid4()
    await asyncio.gather(create(writer, created_id), create(writer, other_id))

    async with one_batch(writer):
        futures = [
            asyncio.ensure_future(enqueue(writer, other_id)),
            asyncio.ensure_future(claim(writer, created_id, "worker-1")),  # refused: not queued
            asyncio.ensure_future(create(writer, new_id)),
            asyncio.ensure_future(enqueue(writer, created_id)),  # same task, after the refusal
        ]
    batches = writer.batches

    results = await asyncio.gather(*futures, return_exceptions=True)

    assert writer.batches == batches + 1
    assert isinstance(results[1], TaskAlreadyClaimed)
    assert "current=created" in str(results[1])
    assert [isinstance(result, Outcome) for result in results] == [True, False, True, True]
    assert stored(app, other_id).status is TaskStatus.queued
    assert stored(app, new_id).status is TaskStatus.created
    assert stored(app, created_id).status is TaskStatus.queued
    assert [type(event) for event in app.task_history(created_id.hex)] == [Task.Created, Task.Enqueued]


async def test_a_command_refused_after_changing_an_aggregate_leaves_nothing_behind(
    app: TaskTrail, writer: GroupCommitWriter
) -> None:
    """A two-aggregate command that changes one task and is refused on the other records nothing."""
    first_id, second_id, other_id = uuid4(), uuid4(), uuid4()
    await asyncio.gather(create(writer, first_id), create(writer, second_id), create(writer, other_id))

    def enqueue_first_then_claim_second(work: UnitOfWork) -> None:
        work.get_task(first_id.hex).enqueue("default", actor="alice")
        work.get_task(second_id.hex).claim("worker-1")  # refused: second is not queued

    async with one_batch(writer):
        futures = [
            asyncio.ensure_future(enqueue(writer, other_id)),
            asyncio.ensure_future(writer.execute(enqueue_first_then_claim_second)),
            asyncio.ensure_future(claim(writer, other_id, "worker-2")),
        ]

    results = await asyncio.gather(*futures, return_exceptions=True)

    assert isinstance(results[0], Outcome) and isinstance(results[2], Outcome)
    assert isinstance(results[1], TaskAlreadyClaimed)
    assert stored(app, first_id).status is TaskStatus.created
    assert stored(app, first_id).version == 1
    assert stored(app, second_id).version == 1
    assert stored(app, other_id).status is TaskStatus.in_progress


@pytest.mark.parametrize("batching", ["same_batch", "as_it_comes"])
async def test_two_workers_claiming_one_task_exactly_one_wins(
    app: TaskTrail, writer: GroupCommitWriter, batching: str
) -> None:
    task_id = await queued_task(writer)

    if batching == "same_batch":
        async with one_batch(writer):
            futures = [
                asyncio.ensure_future(claim(writer, task_id, "worker-a")),
                asyncio.ensure_future(claim(writer, task_id, "worker-b")),
            ]
        results = await asyncio.gather(*futures, return_exceptions=True)
    else:
        results = await asyncio.gather(
            claim(writer, task_id, "worker-a"), claim(writer, task_id, "worker-b"), return_exceptions=True
        )

    winners, losers = split(results)
    assert len(winners) == 1 and len(losers) == 1, results
    assert isinstance(losers[0], InvalidStatusChange)
    assert isinstance(losers[0], TaskAlreadyClaimed)
    task = stored(app, task_id)
    assert task.status is TaskStatus.in_progress
    assert task.doc["last_worker"] == winners[0].result["last_worker"]
    assert [type(event) for event in app.task_history(task_id.hex)].count(Task.Started) == 1


@pytest.fixture
def second_gateway(event_store_env: dict[str, str]) -> Iterator[tuple[TaskTrail, GroupCommitWriter]]:
    """Another "gateway process": its own application (own cache, own connections) and writer."""
    other_app = TaskTrail(event_store_env)
    other_writer = GroupCommitWriter(other_app)
    other_writer.start()
    try:
        yield other_app, other_writer
    finally:
        other_writer.close()
        other_app.close()


async def test_two_gateways_claiming_one_task_exactly_one_wins_via_integrity_error(
    app: TaskTrail, writer: GroupCommitWriter, second_gateway: tuple[TaskTrail, GroupCommitWriter]
) -> None:
    other_app, other_writer = second_gateway
    task_id = await queued_task(writer)
    # Both gateways load the queued task before either claims it, so both saves race: the later
    # one meets IntegrityError, and its command runs again on the fresh task and is refused.
    both_loaded = threading.Barrier(2, timeout=10)
    runs = {"worker-a": 0, "worker-b": 0}

    def racing_claim(gateway_writer: GroupCommitWriter, worker: str):
        def command(work: UnitOfWork) -> dict[str, Any]:
            task = work.get_task(task_id.hex)
            runs[worker] += 1
            if runs[worker] == 1:
                both_loaded.wait()
            task.claim(worker)
            return task_document(task)

        return gateway_writer.execute(command)

    results = await asyncio.gather(
        racing_claim(writer, "worker-a"), racing_claim(other_writer, "worker-b"), return_exceptions=True
    )

    winners, losers = split(results)
    assert len(winners) == 1 and len(losers) == 1, results
    assert isinstance(losers[0], InvalidStatusChange)
    winner = winners[0].result["last_worker"]
    loser = "worker-b" if winner == "worker-a" else "worker-a"
    assert runs == {winner: 1, loser: 2}, "the loser's command was not run again after IntegrityError"
    for gateway_app in (app, other_app):
        task = stored(gateway_app, task_id)
        assert task.status is TaskStatus.in_progress
        assert task.version == 3
        assert task.doc["last_worker"] == winner
    assert [type(event) for event in app.task_history(task_id.hex)] == [Task.Created, Task.Enqueued, Task.Started]


async def test_two_gateways_racing_on_many_tasks_each_task_has_one_winner(
    app: TaskTrail, writer: GroupCommitWriter, second_gateway: tuple[TaskTrail, GroupCommitWriter]
) -> None:
    other_app, other_writer = second_gateway
    task_ids = [await queued_task(writer) for _ in range(20)]
    for task_id in task_ids:  # warm the second gateway's cache: both start from the queued tasks
        other_app.get_task(task_id.hex)

    claims = []
    for task_id in task_ids:
        claims.append(claim(writer, task_id, "worker-a"))
        claims.append(claim(other_writer, task_id, "worker-b"))
    results = await asyncio.gather(*claims, return_exceptions=True)

    for n, task_id in enumerate(task_ids):
        winners, losers = split(results[2 * n: 2 * n + 2])
        assert len(winners) == 1 and len(losers) == 1, results[2 * n: 2 * n + 2]
        assert isinstance(losers[0], InvalidStatusChange)
        task = stored(app, task_id)
        assert task.version == 3
        assert task.doc["last_worker"] == winners[0].result["last_worker"]
