"""The status table, checked pair by pair against the clearml-server table (written out here)."""
import re
from itertools import product

import pytest

from domain.errors import InvalidStatusChange
from domain.status import ALLOWED_TRANSITIONS, TaskStatus, check_transition, is_transition_allowed

S = TaskStatus

# clearml-server's state machine, written out independently of domain/status.py.
CLEARML_TABLE: dict[TaskStatus, frozenset[TaskStatus]] = {
    S.created: frozenset({S.queued, S.in_progress}),
    S.queued: frozenset({S.created, S.in_progress, S.stopped}),
    S.in_progress: frozenset({S.stopped, S.failed, S.created, S.completed}),
    S.stopped: frozenset(
        {S.closed, S.created, S.failed, S.queued, S.in_progress, S.published, S.publishing, S.completed}
    ),
    S.closed: frozenset({S.created, S.failed, S.published, S.publishing, S.stopped}),
    S.failed: frozenset({S.created, S.stopped, S.published, S.queued}),
    S.publishing: frozenset({S.published}),
    S.completed: frozenset({S.published, S.in_progress, S.created}),
    S.published: frozenset(),
}

ALL_PAIRS = list(product(TaskStatus, TaskStatus))


def expected_allowed(current: TaskStatus, new: TaskStatus) -> bool:
    return current == new or new in CLEARML_TABLE.get(current, frozenset())


ALLOWED_PAIRS = [pair for pair in ALL_PAIRS if expected_allowed(*pair)]
REFUSED_PAIRS = [pair for pair in ALL_PAIRS if not expected_allowed(*pair)]


def pair_id(pair: tuple[TaskStatus, TaskStatus]) -> str:
    return f"{pair[0].value}->{pair[1].value}"


def test_the_table_equals_the_clearml_server_table_exactly():
    assert set(ALLOWED_TRANSITIONS) == set(TaskStatus)
    known = {status: allowed for status, allowed in ALLOWED_TRANSITIONS.items() if status != S.unknown}
    assert known == CLEARML_TABLE


def test_an_unknown_status_may_move_nowhere_without_force():
    assert ALLOWED_TRANSITIONS[S.unknown] == frozenset()


def test_the_pairs_split_into_both_kinds():
    # Guards the parametrisation itself: every pair is tested one way or the other.
    assert len(ALLOWED_PAIRS) + len(REFUSED_PAIRS) == len(TaskStatus) ** 2
    assert len(ALLOWED_PAIRS) == len(TaskStatus) + sum(len(v) for v in CLEARML_TABLE.values())


@pytest.mark.parametrize(("current", "new"), ALLOWED_PAIRS, ids=map(pair_id, ALLOWED_PAIRS))
def test_an_allowed_change_passes_without_force(current, new):
    assert check_transition(current, new) is None
    assert is_transition_allowed(current, new) is True


@pytest.mark.parametrize(("current", "new"), REFUSED_PAIRS, ids=map(pair_id, REFUSED_PAIRS))
def test_any_other_change_is_refused_without_force_naming_both_statuses(current, new):
    assert is_transition_allowed(current, new) is False
    with pytest.raises(InvalidStatusChange) as refused:
        check_transition(current, new)
    message = str(refused.value)
    assert re.search(rf"\b{current.value}\b", message), message
    assert re.search(rf"\b{new.value}\b", message), message


@pytest.mark.parametrize(("current", "new"), ALL_PAIRS, ids=map(pair_id, ALL_PAIRS))
def test_every_change_passes_with_force(current, new):
    assert check_transition(current, new, force=True) is None
    assert is_transition_allowed(current, new, force=True) is True
