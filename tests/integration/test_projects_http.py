"""projects.* and events.add_batch over HTTP, against a real gateway and projector."""
from __future__ import annotations

import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import orjson
import pytest

from tests.conftest import TEST_CREDENTIALS, Stack, basic_auth, new_stack, wait_until


@pytest.fixture(scope="module")
def stack(tmp_path_factory, nats_url: str, mongodb_uri: str) -> Iterator[Stack]:
    stack = new_stack(tmp_path_factory.mktemp("projects"), nats_url, mongodb_uri)
    stack.start_gateway()
    stack.start("projector")
    yield stack
    stack.stop_all()


def result(answer: dict) -> tuple[int, int]:
    return answer["meta"]["result_code"], answer["meta"]["result_subcode"]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_project(stack: Stack, name: str, **fields) -> str:
    answer = stack.call("projects.create", name=name, **fields)
    assert result(answer) == (200, 0), answer
    return answer["data"]["id"]


def listed(stack: Stack, **body) -> list[dict]:
    answer = stack.call("projects.get_all", **body)
    assert result(answer) == (200, 0), answer
    return answer["data"]["projects"]


def test_a_created_project_is_read_back_at_once_and_listed_soon_after(stack: Stack) -> None:
    name = unique("vision") + "/detection"
    project_id = create_project(stack, name, description="boxes", tags=["cv"])
    project = stack.call("projects.get_by_id", project=project_id)["data"]["project"]
    assert project["id"] == project_id and project["name"] == name and project["basename"] == "detection"
    assert project["user"] == "tasktrail" and project["tags"] == ["cv"] and project["description"] == "boxes"
    view = wait_until(lambda: listed(stack, id=[project_id]), message="project in the view")
    assert view == [{**project}]


def test_the_sdk_finds_a_project_by_its_exact_name(stack: Stack) -> None:
    base = unique("exact")
    wanted = create_project(stack, f"{base}-a.b")
    create_project(stack, f"{base}-a.b-longer")
    create_project(stack, f"{base}-aXb")
    pattern = "^" + f"{base}-a.b".replace("-", "\\-").replace(".", "\\.") + "$"
    found = wait_until(lambda: listed(stack, name=pattern, only_fields=["id"], search_hidden=True,
                                      shallow_search=False), message="found by name")
    assert found == [{"id": wanted}]


def test_get_all_pages_orders_and_picks_fields(stack: Stack) -> None:
    tag = unique("tag")
    ids = [create_project(stack, unique(f"page{i}"), tags=[tag]) for i in range(5)]
    wait_until(lambda: len(listed(stack, tags=[tag])) == 5, message="five projects listed")
    ordered = listed(stack, tags=[tag], order_by=["-created"], only_fields=["name", "created"])
    assert [project["id"] for project in ordered] == ids[::-1]
    assert set(ordered[0]) == {"id", "name", "created"}
    pages = [listed(stack, tags=[tag], order_by=["created"], page=page, page_size=2) for page in range(3)]
    assert [[project["id"] for project in page] for page in pages] == [ids[0:2], ids[2:4], ids[4:5]]


def test_two_projects_may_not_share_a_name_even_when_created_at_once(stack: Stack) -> None:
    name = unique("taken")
    create_project(stack, name)
    assert result(stack.call("projects.create", name=name)) == (400, 801)
    racing = unique("race")
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: stack.call("projects.create", name=racing), range(8)))
    assert sorted(result(answer) for answer in answers) == [(200, 0)] + [(400, 801)] * 7


@pytest.mark.parametrize(
    ("endpoint", "body", "expected"),
    [
        ("projects.create", {}, (400, 11)),
        ("projects.create", {"name": "  "}, (400, 407)),
        ("projects.create", {"name": "a//b"}, (400, 407)),
        ("projects.create", {"name": 5}, (400, 12)),
        ("projects.create", {"name": "ok-name-x", "tags": "not-a-list"}, (400, 12)),
        ("projects.get_by_id", {"project": "nope"}, (400, 401)),
        ("projects.get_by_id", {"project": uuid.uuid4().hex}, (400, 401)),
        ("projects.get_by_id", {}, (400, 11)),
        ("projects.get_all", {"name": "(a+)+$"}, (400, 12)),
        ("projects.get_all", {"name": "["}, (400, 12)),
        ("projects.get_all", {"order_by": ["$where"]}, (400, 12)),
        ("projects.get_all", {"page_size": 0}, (400, 12)),
        ("projects.get_all", {"id": {"$ne": None}}, (400, 12)),
    ],
)
def test_bad_input_gets_a_clear_error_and_changes_nothing(stack: Stack, endpoint: str, body: dict,
                                                         expected: tuple[int, int]) -> None:
    answer = stack.call(endpoint, **body)
    assert result(answer) == expected, answer
    assert answer["meta"]["result_msg"] and answer["data"] == {}


def add_batch(stack: Stack, raw: bytes) -> dict:
    request = urllib.request.Request(
        f"{stack.api_url}/events.add_batch", data=raw,
        headers={"Authorization": basic_auth(*TEST_CREDENTIALS)}, method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return orjson.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return orjson.loads(error.read())


def test_a_batch_of_reported_events_is_accepted_and_counted(stack: Stack) -> None:
    task = stack.call("tasks.create", name="reporting", type="training")["data"]["id"]
    events = [
        {"timestamp": 1, "type": "training_stats_scalar", "task": task, "iter": 1, "metric": "loss",
         "variant": "train", "value": 0.5},
        {"timestamp": 2, "type": "log", "task": task, "level": "info", "msg": "hello"},
    ]
    ndjson = b"\n".join(orjson.dumps(event) for event in events)
    for raw in (ndjson, orjson.dumps(events)):
        answer = add_batch(stack, raw)
        assert result(answer) == (200, 0) and answer["data"] == {"added": 2, "errors": 0, "errors_info": {}}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"", (400, 17)),
        (b"[]", (400, 17)),
        (b'{"type": "log", "task": "x"}', (400, 12)),
        (b'{"type": "log"}', (400, 12)),
        (b'{"task": "0123456789abcdef0123456789abcdef", "type": "log"}\n{not json', (400, 12)),
        (b"[1, 2]", (400, 12)),
    ],
)
def test_a_malformed_batch_is_refused_whole(stack: Stack, raw: bytes, expected: tuple[int, int]) -> None:
    assert result(add_batch(stack, raw)) == expected


def test_hidden_projects_are_listed_only_when_asked_for(stack: Stack) -> None:
    tag = unique("hide")
    shown = create_project(stack, unique("shown"), tags=[tag], system_tags=["pipeline"])
    hidden = create_project(stack, unique("hidden"), tags=[tag], system_tags=["hidden"])
    everything = wait_until(lambda: len(listed(stack, tags=[tag], search_hidden=True)) == 2 and
                            listed(stack, tags=[tag], search_hidden=True), message="both listed")
    assert {project["id"] for project in everything} == {shown, hidden}
    assert [project["id"] for project in listed(stack, tags=[tag])] == [shown]
    assert [project["id"] for project in listed(stack, tags=[tag], system_tags=["pipeline"])] == [shown]
    assert listed(stack, tags=[tag], system_tags=["hidden"]) == []
    assert [project["id"] for project in listed(stack, system_tags=["hidden"], tags=[tag], search_hidden=True)] == [hidden]
