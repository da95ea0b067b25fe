"""How tasks.get_all requests become MongoDB filters: pure functions, no server.

(The same filters are run against nx-27017 in tests/integration/test_tasks_api_queries.py.)
"""
from __future__ import annotations

import pytest

from domain.task import time_key
from gateway.envelope import ApiError
from gateway.task_queries import (
    MAX_PAGE_SIZE,
    add_condition,
    build_filter,
    build_paging,
    build_sort,
    build_task_query,
    checked_pattern,
    list_field_condition,
    scroll_position,
    scroll_token,
    search_text_condition,
)

HIDDEN = {"system_tags": {"$nin": ["hidden"]}}


def refused(function, *arguments, subcode: int = 12) -> str:
    with pytest.raises(ApiError) as error:
        function(*arguments)
    assert (error.value.code, error.value.subcode) == (400, subcode), error.value.message
    return error.value.message


@pytest.mark.parametrize(
    "pattern",
    ["^resnet", "(?i)^ResNet-\\d+$", "a.*b.*c", "(foo|bar)+", "[a-z]+-[0-9]{2,4}", "^(train|test)_v\\d$", "x?y*z+"],
)
def test_ordinary_patterns_are_accepted(pattern):
    assert checked_pattern(pattern) == pattern


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("(a+)+", "nested"),
        ("((ab)*)+", "nested"),
        ("(\\w+\\s?)*$", "nested"),
        ("(a|a)*", "alternatives"),
        ("(a|ab)+c", "alternatives"),
        ("(.|x)*", "alternatives"),
        ("(A|a)+$", "alternatives"),
        ("(a)\\1", "backreference"),
        ("(", "invalid"),
        ("x" * 201, "longer"),
    ],
)
def test_patterns_that_could_run_away_are_refused_before_any_query(pattern, reason):
    assert reason in refused(checked_pattern, pattern)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["a"], {"tags": "a"}),
        (["a", "b"], {"tags": {"$in": ["a", "b"]}}),
        (["-a"], {"tags": {"$nin": ["a"]}}),
        (["a", "-b"], {"$or": [{"tags": "a"}, {"tags": {"$nin": ["b"]}}]}),
        (["__$all", "a", "b"], {"tags": {"$all": ["a", "b"]}}),
        (["__$all", "a"], {"tags": "a"}),
        (["__$all", "a", "__$not", "b"], {"tags": {"$in": ["a"], "$nin": ["b"]}}),
        (["__$all", "a", "c", "__$not", "b"], {"tags": {"$all": ["a", "c"], "$nin": ["b"]}}),
        (["__$all", "__$not", "a", "__$not", "b"], {"$or": [{"tags": {"$nin": ["a"]}}, {"tags": {"$nin": ["b"]}}]}),
        (["__$not", "a"], {"tags": {"$nin": ["a"]}}),
        (["a", "a"], {"tags": "a"}),
        ([None], {"$or": [{"tags": {"$exists": False}}, {"tags": None}, {"tags": {"$size": 0}}]}),
    ],
)
def test_list_fields_follow_clearml_server(values, expected):
    assert list_field_condition("tags", "tags", values) == expected


@pytest.mark.parametrize("values", [["__$nand", "a"], ["__$not"], ["__$not", "__$all", "a"], ["-"]])
def test_a_malformed_list_field_is_a_fields_value_error(values):
    refused(list_field_condition, "tags", "tags", values, subcode=16)


def test_hidden_tasks_are_left_out_unless_asked_for_or_named():
    assert build_filter({}) == HIDDEN
    assert build_filter({"search_hidden": True}) == {}
    assert build_filter({"id": ["x"]}) == {"_id": "x"}


def test_conditions_on_one_field_merge_or_fall_back_to_and():
    query = {"system_tags": {"$nin": ["archived"]}}
    add_condition(query, {"system_tags": {"$nin": ["hidden"]}})
    assert query == {"system_tags": {"$nin": ["archived", "hidden"]}}
    add_condition(query, {"system_tags": "x"})
    assert query == {"system_tags": {"$nin": ["archived", "hidden"], "$in": ["x"]}}
    add_condition(query, {"system_tags": "y"})
    assert query == {"system_tags": {"$nin": ["archived", "hidden"], "$in": ["x"]}, "$and": [{"system_tags": {"$in": ["y"]}}]}


def test_equality_filters_and_patterns():
    query = build_filter({
        "status": ["created"], "project": ["p1", "p2"], "type": "qc", "parent": "t1",
        "name": "^a", "execution.queue": "q", "runtime.gpu": ["A100"], "search_hidden": True,
    })
    assert query == {
        "status": "created", "project": {"$in": ["p1", "p2"]}, "type": "qc", "parent": "t1",
        "name": {"$regex": "^a"}, "execution.queue": "q", "runtime.gpu": "A100",
    }


def test_times_are_compared_through_their_text_copy():
    query = build_filter({"status_changed": [">2024-01-02T03:04:05Z", "<=1704164645"], "search_hidden": True})
    assert query == {"_times.status_changed": {
        "$gt": time_key("2024-01-02T03:04:05.000000+00:00"), "$lte": time_key("2024-01-02T03:04:05.000000+00:00")}}
    assert build_filter({"last_update": ["2024-01-01", None], "search_hidden": True}) == {
        "_times.last_update": {"$gte": time_key("2024-01-01T00:00:00.000000+00:00")}}
    assert build_filter({"started": [None, "2024-01-01"], "search_hidden": True}) == {"$or": [
        {"_times.started": {"$lte": time_key("2024-01-01T00:00:00.000000+00:00")}}, {"_times.started": None}]}


def test_any_and_all_are_case_insensitive_inline():
    assert build_filter({"_any_": {"pattern": "x", "fields": ["name", "id"]}, "search_hidden": True}) == {
        "$or": [{"name": {"$regex": "(?i)x"}}, {"_id": {"$regex": "(?i)x"}}]}
    assert build_filter({"_all_": {"pattern": "x", "fields": ["name", "comment"]}, "search_hidden": True}) == {
        "name": {"$regex": "(?i)x"}, "comment": {"$regex": "(?i)x"}}


def test_search_text_is_a_literal_any_of_the_words():
    assert search_text_condition("Foo  (a+)+") == {"_text": {"$regex": "foo|\\(a\\+\\)\\+"}}
    assert search_text_condition("   ") == {}


def test_sort_adds_the_id_for_a_unique_order():
    assert build_sort({"order_by": ["-last_update", "name"]}) == [("last_update", -1), ("name", 1), ("_id", 1)]
    assert build_sort({"order_by": ["-id"]}) == [("_id", -1)]
    assert build_sort({"order_by": ["hyperparams.Args.a$b.value"]})[0] == ("hyperparams.Args.a%24b.value", 1)
    assert build_sort({}) == []
    refused(build_sort, {"order_by": ["$natural"]})


def test_paging():
    assert build_paging({}) == (0, MAX_PAGE_SIZE, None)
    assert build_paging({"page": 2, "page_size": 10}) == (20, 10, None)
    assert build_paging({"page_size": 10}) == (0, 10, None)
    assert build_paging({"page": 1, "page_size": 2000}) == (2000, MAX_PAGE_SIZE, 2000)
    assert build_paging({"scroll_id": None, "size": 5}) == (0, 5, None)
    assert build_paging({"scroll_id": scroll_token(40), "size": 5}) == (40, 5, None)
    assert build_paging({"scroll_id": scroll_token(40), "size": 5, "refresh_scroll": True}) == (0, 40, None)
    refused(build_paging, {"page": 1}, subcode=11)
    refused(build_paging, {"scroll_id": "x"})
    assert scroll_position(scroll_token(123)) == 123
    refused(scroll_position, "bm90LWEtc2Nyb2xs", subcode=1104)


def test_any_over_several_fields_is_matched_by_the_gateway_not_with_an_or():
    query = build_task_query({"_any_": {"pattern": "^Bert", "fields": ["name", "tags", "models.input.model"]},
                              "project": "p"})
    assert query.filter == {"project": "p", **HIDDEN}
    (matcher,) = query.matchers
    assert matcher({"name": "bert-base"})
    assert matcher({"name": "x", "tags": ["a", "BERTY"]})
    assert matcher({"name": "x", "models": {"input": [{"model": "m"}, {"model": "bert1"}]}})
    assert not matcher({"name": "albert", "tags": [], "models": {"input": []}})
    assert not matcher({"name": 5})
    single = build_task_query({"_any_": {"pattern": "x", "fields": ["name"]}})
    assert single.matchers == [] and single.filter["name"] == {"$regex": "(?i)x"}
