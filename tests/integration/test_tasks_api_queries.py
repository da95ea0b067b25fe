"""tasks.get_all (and get_types) over HTTP, on the embedded nx-27017 view: every filter, order,
projection and paging form, and the refusals that keep a query safe.

The module builds one small set of tasks (see `tasks`), in two phases one second apart so that
status_changed filters have a clear boundary.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

from tests.conftest import Stack, new_stack, wait_until
from tests.integration.test_tasks_api import ok, refused


@dataclass
class Tasks:
    ids: dict[str, str]  # short name -> task id
    boundary: str  # status_changed of t3: t1..t3 changed at or before it, t4 and t5 after
    user: str

    def names(self, tasks: list[dict]) -> set[str]:
        by_id = {task_id: name for name, task_id in self.ids.items()}
        return {by_id[task["id"]] for task in tasks}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, nats_url: str, mongodb_uri: str) -> Iterator[Stack]:
    stack = new_stack(tmp_path_factory.mktemp("tasks_api_queries"), nats_url, mongodb_uri)
    stack.start_gateway()
    stack.start("projector")
    yield stack
    stack.stop_all()


@pytest.fixture(scope="module")
def tasks(api: Stack) -> Tasks:
    def create(**fields: Any) -> str:
        return ok(api.call("tasks.create", **fields))["id"]

    ids: dict[str, str] = {}
    ids["t1"] = create(name="resnet-train", type="training", tags=["a", "b"], project="p1", comment="first")
    ids["t2"] = create(name="ResNet-eval", type="testing", tags=["b"], project="p1", comment="second",
                       parent=ids["t1"])
    ok(api.call("tasks.started", task=ids["t2"]))
    ids["t3"] = create(name="bert", type="inference", system_tags=["archived"], project="p2")
    ok(api.call("tasks.started", task=ids["t3"]))
    ok(api.call("tasks.completed", task=ids["t3"]))
    boundary = ok(api.call("tasks.get_by_id", task=ids["t3"]))["task"]["status_changed"]
    time.sleep(1.05)
    ids["t4"] = create(name="hidden one", type="training", tags=["a"], system_tags=["hidden"], project="p2")
    ids["t5"] = create(name="gpt.v2", type="qc", tags=["c"], project="p3",
                       script={"repository": "git@host:org/Repo.git", "entry_point": "main.py"},
                       hyperparams={"Args": {"lr": {"section": "Args", "name": "lr", "value": "0.1"}}})
    queued = ok(api.call("tasks.enqueue", task=ids["t5"], queue="q1"))
    user = ok(api.call("tasks.get_by_id", task=ids["t1"]))["task"]["user"]

    statuses = {"t1": "created", "t2": "in_progress", "t3": "completed", "t4": "created", "t5": "queued"}

    def projected() -> bool:
        found = ok(api.call("tasks.get_all", id=list(ids.values()), only_fields=["status"]))["tasks"]
        by_id = {task["id"]: task["status"] for task in found}
        return all(by_id.get(ids[name]) == status for name, status in statuses.items())

    wait_until(projected, message="the view has every task in its final status")
    assert queued["queued"] == 1
    return Tasks(ids, boundary, user)


def names(api: Stack, tasks: Tasks, **body: Any) -> set[str]:
    return tasks.names(ok(api.call("tasks.get_all", **body))["tasks"])


VISIBLE = {"t1", "t2", "t3", "t5"}  # t4 is hidden


# -- filters -------------------------------------------------------------------------------------
def test_without_filters_every_task_but_the_hidden_ones(api: Stack, tasks: Tasks) -> None:
    answer = ok(api.call("tasks.get_all"))
    assert tasks.names(answer["tasks"]) == VISIBLE
    assert "scroll_id" not in answer  # all of it fitted in one answer
    assert names(api, tasks, search_hidden=True) == VISIBLE | {"t4"}


def test_an_id_list_finds_those_tasks_hidden_or_not(api: Stack, tasks: Tasks) -> None:
    assert names(api, tasks, id=[tasks.ids["t1"], tasks.ids["t4"], "0" * 32]) == {"t1", "t4"}
    assert names(api, tasks, id=tasks.ids["t3"]) == {"t3"}
    assert names(api, tasks, id=[tasks.ids["t1"], tasks.ids["t2"]], order_by=["-name"]) == {"t1", "t2"}
    found = ok(api.call("tasks.get_all", id=[tasks.ids["t1"], tasks.ids["t2"]], order_by=["name"]))["tasks"]
    assert [task["name"] for task in found] == ["ResNet-eval", "resnet-train"]


def test_name_is_a_case_sensitive_regex(api: Stack, tasks: Tasks) -> None:
    assert names(api, tasks, name="^resnet") == {"t1"}
    assert names(api, tasks, name="(?i)^resnet") == {"t1", "t2"}
    assert names(api, tasks, name=r"gpt\.v\d") == {"t5"}
    assert names(api, tasks, comment="sec") == {"t2"}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"project": ["p1"]}, {"t1", "t2"}),
        ({"project": ["p1", "p2"]}, {"t1", "t2", "t3"}),
        ({"project": "p3"}, {"t5"}),
        ({"type": ["training", "qc"]}, {"t1", "t5"}),
        ({"status": ["created", "queued"]}, {"t1", "t5"}),
        ({"status": ["-created"]}, {"t2", "t3", "t5"}),
        ({"user": ["nobody"]}, set()),
        ({"execution.queue": None}, VISIBLE),
    ],
)
def test_equality_filters(api: Stack, tasks: Tasks, body: dict, expected: set) -> None:
    assert names(api, tasks, **body) == expected


def test_user_parent_and_queue_filters(api: Stack, tasks: Tasks) -> None:
    assert names(api, tasks, user=[tasks.user]) == VISIBLE
    assert names(api, tasks, parent=tasks.ids["t1"]) == {"t2"}
    queue = ok(api.call("tasks.get_by_id", task=tasks.ids["t5"]))["task"]["execution"]["queue"]
    assert names(api, tasks, **{"execution.queue": queue}) == {"t5"}
    assert names(api, tasks, **{"hyperparams.Args.lr.value": ["0.1"]}) == {"t5"}


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        (["a"], {"t1"}),
        (["a", "b"], {"t1", "t2"}),  # any of them
        (["-b"], {"t3", "t5"}),
        (["a", "-b"], {"t1", "t3", "t5"}),  # joined with OR, as clearml-server
        (["__$all", "a", "b"], {"t1"}),
        (["__$all", "b", "__$not", "a"], {"t2"}),
        (["__$not", "b"], {"t3", "t5"}),
        (["__$all", "__$not", "a", "__$not", "c"], VISIBLE),  # not (a and c), as clearml-server
        (["__$any", "c", "__$all", "a", "b"], {"t1", "t5"}),  # c OR (a AND b): the first operator joins
        ([None], {"t3"}),  # empty or missing
        (["c", None], {"t3", "t5"}),
    ],
)
def test_tags_follow_clearml_server_rules(api: Stack, tasks: Tasks, tags: list, expected: set) -> None:
    assert names(api, tasks, tags=tags) == expected


def test_system_tags_and_hidden_tasks(api: Stack, tasks: Tasks) -> None:
    assert names(api, tasks, system_tags=["archived"]) == {"t3"}
    assert names(api, tasks, system_tags=["-archived"]) == {"t1", "t2", "t5"}
    assert names(api, tasks, system_tags=["hidden"]) == set()
    assert names(api, tasks, system_tags=["hidden"], search_hidden=True) == {"t4"}


def epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def test_status_changed_constraints_in_iso_or_epoch(api: Stack, tasks: Tasks) -> None:
    boundary = tasks.boundary
    assert names(api, tasks, status_changed=[f">{boundary}"]) == {"t5"}
    assert names(api, tasks, status_changed=[f"<={boundary}"]) == {"t1", "t2", "t3"}
    assert names(api, tasks, status_changed=[f"<{boundary}"]) == {"t1", "t2"}
    assert names(api, tasks, status_changed=[f">={boundary}"], search_hidden=True) == {"t3", "t4", "t5"}
    assert names(api, tasks, status_changed=[f"<{int(epoch(boundary)) + 1}"]) == {"t1", "t2", "t3"}
    assert names(api, tasks, status_changed=[">2000-01-01", "<2999-01-01T00:00:00Z"]) == VISIBLE
    assert names(api, tasks, status_changed=[boundary, None]) == {"t3", "t5"}  # a [min, max] pair
    assert names(api, tasks, status_changed=boundary) == {"t3"}
    refused(api.call("tasks.get_all", status_changed=[">yesterday"]), 400, 12)


def test_range_fields(api: Stack, tasks: Tasks) -> None:
    assert names(api, tasks, started=["2000-01-01", None]) == {"t2", "t3"}
    assert names(api, tasks, last_iteration=[0, 0]) == VISIBLE
    refused(api.call("tasks.get_all", last_iteration=[1]), 400, 12)
    refused(api.call("tasks.get_all", last_iteration=[None, None]), 400, 12)


def test_search_text_looks_in_name_comment_id_and_script(api: Stack, tasks: Tasks) -> None:
    assert names(api, tasks, search_text="BERT") == {"t3"}
    assert names(api, tasks, search_text="org/repo") == {"t5"}
    assert names(api, tasks, search_text="first second") == {"t1", "t2"}  # any of the words
    assert names(api, tasks, search_text=tasks.ids["t1"][:12]) == {"t1"}
    assert names(api, tasks, search_text="(a+)+") == set()  # a literal, not a pattern


def test_any_and_all_patterns_over_fields(api: Stack, tasks: Tasks) -> None:
    assert names(api, tasks, _any_={"pattern": "^first|^second", "fields": ["comment", "name"]}) == {"t1", "t2"}
    assert names(api, tasks, _any_={"pattern": "BERT", "fields": ["name"]}) == {"t3"}
    assert names(api, tasks, _all_={"pattern": "s", "fields": ["name", "comment"]}) == {"t1", "t2"}
    assert names(api, tasks, _any_={"pattern": tasks.ids["t5"][:10], "fields": ["id"]}) == {"t5"}
    assert names(api, tasks, _any_={"pattern": "x", "fields": []}) == VISIBLE


# -- projection, order, paging -------------------------------------------------------------------
def test_only_fields_picks_dotted_paths(api: Stack, tasks: Tasks) -> None:
    (task,) = ok(api.call("tasks.get_all", id=[tasks.ids["t5"]],
                          only_fields=["name", "execution.queue", "hyperparams.Args.lr.value", "missing.field"]))["tasks"]
    assert set(task) == {"id", "name", "execution", "hyperparams"}
    assert task["hyperparams"] == {"Args": {"lr": {"value": "0.1"}}}
    assert list(task["execution"]) == ["queue"]
    (task,) = ok(api.call("tasks.get_all", id=[tasks.ids["t5"]], only_fields=["-script", "-execution.queue"]))["tasks"]
    assert "script" not in task and "queue" not in task["execution"] and task["name"] == "gpt.v2"


def test_order_by_with_a_minus_for_descending(api: Stack, tasks: Tasks) -> None:
    def ordered(*order_by: str) -> list[str]:
        found = ok(api.call("tasks.get_all", order_by=list(order_by), only_fields=["name"]))["tasks"]
        return [task["name"] for task in found]

    assert ordered("name") == ["ResNet-eval", "bert", "gpt.v2", "resnet-train"]
    assert ordered("-name") == ["resnet-train", "gpt.v2", "bert", "ResNet-eval"]
    assert ordered("-status_changed")[0] == "gpt.v2"
    assert ordered("type", "-name")[:2] == ["bert", "gpt.v2"]


def test_pages_and_scrolls(api: Stack, tasks: Tasks) -> None:
    def page(number: int) -> list[str]:
        found = ok(api.call("tasks.get_all", order_by=["name"], page=number, page_size=3))["tasks"]
        return [task["name"] for task in found]

    assert page(0) == ["ResNet-eval", "bert", "gpt.v2"]
    assert page(1) == ["resnet-train"]
    assert page(2) == []

    first = ok(api.call("tasks.get_all", order_by=["name"], scroll_id=None, size=2))
    assert [task["name"] for task in first["tasks"]] == ["ResNet-eval", "bert"]
    second = ok(api.call("tasks.get_all", order_by=["name"], scroll_id=first["scroll_id"], size=2))
    assert [task["name"] for task in second["tasks"]] == ["gpt.v2", "resnet-train"]
    third = ok(api.call("tasks.get_all", order_by=["name"], scroll_id=second["scroll_id"], size=2))
    assert third["tasks"] == [] and third["scroll_id"]
    again = ok(api.call("tasks.get_all", order_by=["name"], scroll_id=second["scroll_id"], size=1,
                        refresh_scroll=True))
    assert len(again["tasks"]) == 4


def test_a_full_page_says_where_to_continue(api: Stack, tasks: Tasks) -> None:
    answer = ok(api.call("tasks.get_all", order_by=["name"], page=0, page_size=2))
    assert len(answer["tasks"]) == 2 and answer["scroll_id"]
    rest = ok(api.call("tasks.get_all", order_by=["name"], scroll_id=answer["scroll_id"], size=10))
    assert [task["name"] for task in rest["tasks"]] == ["gpt.v2", "resnet-train"]


@pytest.mark.parametrize(
    ("body", "subcode"),
    [
        ({"page": 0}, 11),
        ({"page_size": 0}, 12),
        ({"page": -1, "page_size": 2}, 12),
        ({"scroll_id": "garbage!", "size": 2}, 1104),
        ({"scroll_id": None}, 12),
    ],
)
def test_paging_refusals(api: Stack, tasks: Tasks, body: dict, subcode: int) -> None:
    refused(api.call("tasks.get_all", **body), 400, subcode)


# -- refusals that keep queries safe -------------------------------------------------------------
@pytest.mark.parametrize(
    "body",
    [
        {"name": "(a+)+$"},
        {"name": "(a*)*b"},
        {"name": "(a|aa)*c"},
        {"name": "(x+x+)+y"},
        {"name": r"(a)\1"},
        {"name": "("},
        {"name": "a" * 201},
        {"_any_": {"pattern": "(.*a){2,}+", "fields": ["name"]}},
        {"_all_": {"pattern": "([a-z]+)*$", "fields": ["name", "comment"]}},
    ],
)
def test_a_pattern_that_could_run_away_is_refused(api: Stack, tasks: Tasks, body: dict) -> None:
    refused(api.call("tasks.get_all", **body), 400, 12)


@pytest.mark.parametrize(
    "body",
    [
        {"status": {"$ne": "created"}},
        {"name": {"$regex": ".*"}},
        {"tags": [{"$gt": ""}]},
        {"id": [{"$exists": True}]},
        {"parent": {"$ne": None}},
        {"execution.queue": {"$ne": None}},
        {"hyperparams.Args.lr.value": {"$gt": ""}},
        {"order_by": ["$where"]},
        {"order_by": [{"name": 1}]},
        {"only_fields": ["execution.$queue"]},
        {"_any_": {"pattern": "a", "fields": ["$where"]}},
        {"_any_": {"pattern": {"$ne": 1}, "fields": ["name"]}},
        {"_all_": "name"},
        {"search_text": {"$search": "x"}},
        {"status_changed": [{"$gt": 0}]},
        {"search_hidden": "maybe"},
    ],
)
def test_no_filter_value_can_carry_an_operator(api: Stack, tasks: Tasks, body: dict) -> None:
    refused(api.call("tasks.get_all", **body), 400, 12)


@pytest.mark.parametrize("tags", [["__$xor", "a"], ["a", "__$not"], ["-"]])
def test_a_malformed_list_filter_is_refused(api: Stack, tasks: Tasks, tags: list) -> None:
    refused(api.call("tasks.get_all", tags=tags), 400, 16)


# -- get_types -----------------------------------------------------------------------------------
def test_get_types_lists_the_types_in_use(api: Stack, tasks: Tasks) -> None:
    assert ok(api.call("tasks.get_types"))["types"] == ["inference", "qc", "testing", "training"]
    assert ok(api.call("tasks.get_types", projects=["p1"]))["types"] == ["testing", "training"]
    refused(api.call("tasks.get_types", projects=[3]), 400, 12)
