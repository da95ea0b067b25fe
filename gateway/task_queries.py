"""`tasks.*` queries: get_by_id and the per-task getters read the aggregate (read your own write);
get_all and get_types read the MongoDB view.

Every filter value is checked to be a string (or a list of strings) before it reaches MongoDB,
field names are checked to be plain dotted paths, and patterns are checked to be regexes that
cannot run away, so no request can smuggle in an operator or a runaway scan. Filters are built
to give the same answer on MongoDB 7 and on the embedded nx-27017 (see the team's notes): array
membership as plain equality, `$nin` rather than `$ne` on arrays, inline `(?i)` rather than
`$options`, `$or` only where the request asks for "any of", and `_id` lists split into equality
lookups.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Any

from pymongo.collection import Collection

from domain.document import get_path, iso_time, set_path
from domain.errors import TaskNotFound
from domain.task import TIME_FILTER_FIELDS, TIME_KEYS, Task, parse_task_id, time_key
from domain.task_fields import (
    SEARCH_TEXT_FIELD,
    TASK_TYPES,
    api_document,
    escape_key,
    to_datetime,
    unescape_key,
)
from gateway.call import Call
from gateway.envelope import ApiError
from gateway.errors import invalid_field, missing_field
from gateway.request import optional_bool, optional_int, optional_string_list, required_string
from projections import task_view

try:  # the standard library's regex parser, to look at a pattern's structure
    from re import _parser as regex_parser  # type: ignore[attr-defined]
    from re import _constants as regex_constants  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - older Pythons
    regex_parser = regex_constants = None

MAX_PAGE_SIZE = 500
MAX_PATTERN_LENGTH = 200
MAX_SEARCH_WORDS = 10
# A top-level field, then any path parts that hold no dot and do not start with `$` (or blank).
FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[^.$\s][^.]*)*$")
# A quantified group that itself holds a quantifier ("(a+)+", "(a*)*") can backtrack without end.
NESTED_QUANTIFIER = re.compile(r"\([^()]*[+*}][^()]*\)\s*[+*{]")
HIDDEN_TAG = "hidden"
DATETIME_MODIFIERS = {">=": "$gte", ">": "$gt", "<=": "$lte", "<": "$lt"}
DATETIME_CONSTRAINT = re.compile(r"^(?P<prefix>>=|>|<=|<)?(?P<value>.*)$", re.DOTALL)

# Request fields, by how clearml-server's tasks.get_all reads them.
LIST_FIELDS = ("id", "user", "tags", "system_tags", "type", "status", "project", "parent")
LIST_FIELD_PREFIXES = ("hyperparams.",)
PATTERN_FIELDS = ("name", "comment")
DATETIME_FIELDS = ("status_changed", "last_update")
RANGE_FIELDS = {"started": "datetime", "active_duration": "number", "last_iteration": "number"}
EQUALITY_FIELDS = ("execution.queue", "models.input.model")
EQUALITY_FIELD_PREFIXES = ("runtime.",)


def fields_value_error(message: str) -> ApiError:
    return ApiError(400, 16, f"Invalid value for fields: {message}")


def invalid_scroll_id(scroll_id: Any) -> ApiError:
    return ApiError(400, 1104, f"Invalid scroll id: {scroll_id!r}")


# -- checking what a request may put in a query --------------------------------------------------
def checked_pattern(pattern: str) -> str:
    """A regex that compiles, is not too long and cannot backtrack without end; else 400."""
    if not isinstance(pattern, str):
        raise invalid_field("pattern must be a string")
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise invalid_field(f"pattern longer than {MAX_PATTERN_LENGTH} characters")
    if NESTED_QUANTIFIER.search(pattern):
        raise invalid_field(f"pattern {pattern!r} has nested quantifiers and could run away")
    try:
        re.compile(pattern)
    except (re.error, RecursionError) as error:
        raise invalid_field(f"invalid pattern {pattern!r}: {error}") from None
    problem = runaway_construct(pattern)
    if problem:
        raise invalid_field(f"pattern {pattern!r} {problem} and could run away")
    return pattern


def runaway_construct(pattern: str) -> str | None:
    """What makes the pattern's backtracking unbounded, if anything (None: it is safe)."""
    if repeats_overlapping_alternatives(pattern):
        return "repeats alternatives that can match the same text"
    if regex_parser is None:  # pragma: no cover
        return None
    try:
        parsed = regex_parser.parse(pattern)
    except Exception:  # noqa: BLE001 - re.compile accepted it; stay conservative
        return "cannot be analysed"
    return _walk(parsed, inside_repeat=False)


_REPEATS = ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT")


def _walk(items: Any, inside_repeat: bool) -> str | None:
    """Nested unbounded repeats and backreferences, found in the parsed pattern."""
    for op, argument in items:
        name = str(op)
        if name in ("GROUPREF", "GROUPREF_EXISTS"):
            return "uses a backreference"
        children: list[Any] = []
        repeat = inside_repeat
        if name in _REPEATS:
            low, high, sub = argument
            if high > 1 and inside_repeat:
                return "has nested quantifiers"
            children, repeat = [sub], inside_repeat or high > 1
        elif name == "SUBPATTERN":
            children = [argument[-1]]
        elif name == "BRANCH":
            children = list(argument[1])
        elif name in ("ASSERT", "ASSERT_NOT"):
            children = [argument[1]]
        elif name == "ATOMIC_GROUP":
            children = [argument]
        for child in children:
            problem = _walk(child, repeat)
            if problem:
                return problem
    return None


_GROUP_PREFIX = re.compile(r"\?(?:P?<[A-Za-z_]\w*>|<[=!]|[:=!>]|[a-zA-Z-]+:|[a-zA-Z-]+(?=\)))")
_REPEAT_AFTER = re.compile(r"[*+]|\{(\d*),(\d*)\}|\{(\d+)\}")
_PLAIN = re.compile(r"[\w\s!\"#%&',/:;<=>@_`~-]")


def repeats_overlapping_alternatives(pattern: str) -> bool:
    """True when a repeated group has alternatives that may start alike, e.g. `(a|ab)+`, `(A|a)*`.

    Read from the text, not the parsed pattern: Python's parser rewrites alternatives (common
    prefixes, single characters into classes) that the database's regex engine runs as written.
    First characters are compared without case, as the server may match case-insensitively.
    """
    stack: list[list[int]] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            index += 2
            continue
        if char == "[":
            index = _class_end(pattern, index) + 1
            continue
        if char == "(":
            prefix = _GROUP_PREFIX.match(pattern, index + 1)
            start = prefix.end() if prefix else index + 1
            stack.append([start])
            index = start
            continue
        if char == "|" and stack:
            stack[-1].append(index + 1)
        elif char == ")" and stack:
            starts = stack.pop()
            if len(starts) > 1 and _repeated(pattern, index + 1):
                firsts = [_first_char(pattern, start) for start in starts]
                if None in firsts or len({first.lower() for first in firsts}) < len(firsts):
                    return True
        index += 1
    return False


def _class_end(pattern: str, index: int) -> int:
    index += 1
    if pattern.startswith("^", index):
        index += 1
    if pattern.startswith("]", index):
        index += 1
    while index < len(pattern) and pattern[index] != "]":
        index += 2 if pattern[index] == "\\" else 1
    return index


def _repeated(pattern: str, index: int) -> bool:
    match = _REPEAT_AFTER.match(pattern, index)
    if not match:
        return False
    if match.group(0) in ("*", "+"):
        return True
    upper = match.group(2) if match.group(3) is None else match.group(3)
    return upper == "" or int(upper or 0) > 1


def _first_char(pattern: str, index: int) -> str | None:
    """The literal an alternative starts with, or None when it may start with several."""
    if index >= len(pattern) or pattern[index] in "|)":
        return None
    char = pattern[index]
    if char == "\\" and index + 1 < len(pattern) and not pattern[index + 1].isalnum():
        return pattern[index + 1]
    if _PLAIN.fullmatch(char) and not pattern.startswith(("*", "+", "?", "{"), index + 1):
        return char
    return None


def checked_field_name(name: str) -> str:
    if not isinstance(name, str) or not FIELD_NAME.match(name):
        raise invalid_field(f"invalid field name {name!r}")
    return name


def stored_path(name: str) -> str:
    """The document path of an API field name: `id` is `_id`, nested keys are stored escaped."""
    checked_field_name(name)
    if name == "id":
        return "_id"
    first, *rest = name.split(".")
    return ".".join([first, *(escape_key(part) for part in rest)])


def string_values(body: dict[str, Any], key: str, allow_null: bool = False) -> list[Any] | None:
    """A string or a list of strings (with nulls, where the field allows "empty"); else 400/12."""
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(
        isinstance(item, str) or (allow_null and item is None) for item in value
    ):
        return value
    raise invalid_field(f"{key} must be a string or a list of strings")


# -- filters -------------------------------------------------------------------------------------
def membership(values: list[str]) -> Any:
    """Equality for one value, `$in` for several (the embedded server is faster with equality)."""
    return values[0] if len(values) == 1 else {"$in": values}


def list_field_filter(values: list[str]) -> dict[str, Any] | str:
    """Any of the plain values and none of the `-`-prefixed ones, as one field's condition.

    (Kept for other views' queries; tasks.get_all follows clearml-server's rules, see
    `list_field_condition`.)
    """
    include = [value for value in values if not value.startswith("-")]
    exclude = [value[1:] for value in values if value.startswith("-")]
    condition: dict[str, Any] = {}
    if include:
        condition["$in"] = include
    if exclude:
        condition["$nin"] = exclude
    if list(condition) == ["$in"] and len(include) == 1:
        return include[0]
    return condition


_OPERATORS = {"__$all": "and", "__$and": "and", "__$any": "or", "__$or": "or"}
_UNARY = {"__$not": False, "__$nop": True}


def list_field_condition(field_name: str, path: str, values: list[Any]) -> dict[str, Any]:
    """clearml-server's list-field filter as a MongoDB filter.

    Values are joined with OR unless `__$all`/`__$and` comes first (`__$any`/`__$or` switch
    back); a `-` prefix or a preceding `__$not` excludes a value; null also matches an empty or
    missing field. Under OR an included value is `$in` and an excluded one `$nin`; under AND
    they are `$all` and "not all". The parts are then joined with the first operator given.
    """
    context = global_operator = None
    unary: str | None = None
    allow_empty = False
    actions: dict[tuple[str, bool], list[str]] = {}
    for value in values:
        if value is None:
            allow_empty, unary = True, None
            continue
        if value.startswith("__$"):
            if unary:
                raise fields_value_error(f"a value is expected after {unary} in {field_name}")
            if value in _UNARY:
                unary = value
                continue
            if value not in _OPERATORS:
                raise fields_value_error(f"unsupported operator {value} in {field_name}")
            context = _OPERATORS[value]
            global_operator = global_operator or context
            continue
        include = True
        if value.startswith("-"):
            value = value[1:]
            if not value:
                raise fields_value_error(f"a value is expected after the exclude prefix - in {field_name}")
            include = False
        elif unary:
            include = _UNARY[unary]
        unary = None
        actions.setdefault((context or "or", include), []).append(value)
    if unary:
        raise fields_value_error(f"a value is expected after {unary} in {field_name}")

    parts = []
    for (operator, include), found in actions.items():
        found = list(dict.fromkeys(found))
        if operator == "or" and include:
            parts.append({path: membership(found)})
        elif operator == "or":
            parts.append({path: {"$nin": found}})
        elif include:
            parts.append({path: found[0] if len(found) == 1 else {"$all": found}})
        elif len(found) == 1:
            parts.append({path: {"$nin": found}})
        else:  # not all of them: at least one is missing
            parts.append({"$or": [{path: {"$nin": [value]}} for value in found]})
    condition = combine(parts, global_operator or "or")
    if allow_empty:
        empty = [{path: {"$exists": False}}, {path: None}, {path: {"$size": 0}}]
        condition = {"$or": ([condition] if condition else []) + empty}
    return condition


def combine(parts: list[dict[str, Any]], operator: str) -> dict[str, Any]:
    if not parts:
        return {}
    if len(parts) == 1:
        return parts[0]
    if operator == "or":
        return {"$or": parts}
    query: dict[str, Any] = {}
    for part in parts:
        add_condition(query, part)
    return query


def add_condition(query: dict[str, Any], part: dict[str, Any]) -> None:
    """AND `part` into `query`, merging per-field operators where that means the same."""
    for key, value in part.items():
        if key not in query:
            query[key] = value
            continue
        current = query[key]
        if key == "$and":
            query["$and"] = [*current, *value]
            continue
        if isinstance(current, str) and _is_operators(value):
            current = {"$in": [current]}  # equality, as an operator that can sit beside others
        if isinstance(value, str) and _is_operators(current):
            value = {"$in": [value]}
        if _is_operators(current) and _is_operators(value):
            merged = dict(current)
            clash = False
            for operator, operand in value.items():
                if operator not in merged:
                    merged[operator] = operand
                elif operator in ("$nin", "$all"):
                    merged[operator] = list(dict.fromkeys([*merged[operator], *operand]))
                else:
                    clash = True
            if not clash:
                query[key] = merged
                continue
        query.setdefault("$and", []).append({key: value})


def _is_operators(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and all(key.startswith("$") for key in value)


def regex(pattern: str, ignore_case: bool = False) -> dict[str, str]:
    """A `$regex` condition; case-insensitivity inline, never `$options` (slow on nx-27017)."""
    return {"$regex": ("(?i)" if ignore_case else "") + checked_pattern(pattern)}


def datetime_text(field_name: str, value: Any) -> str:
    """The comparable text of a requested time (see domain.task.TIME_KEYS)."""
    moment = to_datetime(value)
    if moment is None:
        raise invalid_field(f"{field_name}: {value!r} is not an ISO-8601 date-time or epoch seconds")
    return time_key(iso_time(moment))


def time_path(field_name: str) -> str:
    """Times are compared through their private text copy, never the ISO field itself."""
    assert field_name in TIME_FILTER_FIELDS, field_name
    return f"{TIME_KEYS}.{field_name}"


def datetime_condition(field_name: str, values: list[Any]) -> dict[str, Any]:
    """`>`, `>=`, `<`, `<=` constraints (or a bare [min, max] pair) on a stored time, compared as text."""
    if len(values) == 2 and not any(
        isinstance(value, str) and value.startswith(tuple(DATETIME_MODIFIERS)) for value in values
    ):
        return range_condition(field_name, values, "datetime")
    condition: dict[str, Any] = {}
    for value in values:
        if not isinstance(value, str):
            raise invalid_field(f"{field_name} constraints must be strings")
        match = DATETIME_CONSTRAINT.match(value)
        prefix, text = match.group("prefix"), match.group("value")
        moment = datetime_text(field_name, text)
        if prefix:
            condition[DATETIME_MODIFIERS[prefix]] = moment
        else:
            return {time_path(field_name): moment}
    return {time_path(field_name): condition} if condition else {}


def range_condition(field_name: str, values: Any, kind: str) -> dict[str, Any]:
    """A [min, max] range, both ends included; a null end is open (a null min matches unset too)."""
    if not isinstance(values, list) or len(values) != 2:
        raise invalid_field(f"min and max values should be specified for range field {field_name}")
    low, high = (_range_value(field_name, value, kind) for value in values)
    if low is None and high is None:
        raise invalid_field(f"at least one of min or max values should be provided for {field_name}")
    path = time_path(field_name) if kind == "datetime" else field_name
    condition = {}
    if low is not None:
        condition["$gte"] = low
    if high is not None:
        condition["$lte"] = high
    if low is None:
        return {"$or": [{path: condition}, {path: None}]}
    return {path: condition}


def _range_value(field_name: str, value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "datetime":
        return datetime_text(field_name, value)
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise invalid_field(f"{field_name} range values must be numbers") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise invalid_field(f"{field_name} range values must be numbers")
    return value


def multi_field_condition(key: str, value: Any) -> dict[str, Any]:
    """`_any_` / `_all_`: {pattern, fields}: the pattern (case-insensitive) in any / all fields."""
    if not isinstance(value, dict):
        raise invalid_field(f"{key} must be an object with pattern and fields")
    pattern, fields = value.get("pattern"), value.get("fields")
    if fields is not None and (not isinstance(fields, list) or not all(isinstance(f, str) for f in fields)):
        raise invalid_field(f"{key}.fields must be a list of strings")
    if pattern is not None and not isinstance(pattern, str):
        raise invalid_field(f"{key}.pattern must be a string")
    if not fields or not pattern:
        return {}
    condition = regex(pattern, ignore_case=True)
    parts = [{stored_path(name): dict(condition)} for name in dict.fromkeys(fields)]
    return combine(parts, "or" if key == "_any_" else "and")


def search_text_condition(text: Any) -> dict[str, Any]:
    """Any of the words, as a literal, case-insensitive match in the document's search text."""
    if not isinstance(text, str):
        raise invalid_field("search_text must be a string")
    words = text.lower().split()
    if not words:
        return {}
    if len(words) > MAX_SEARCH_WORDS or len(text) > MAX_PATTERN_LENGTH:
        raise invalid_field(f"search_text is limited to {MAX_SEARCH_WORDS} words and {MAX_PATTERN_LENGTH} characters")
    return {SEARCH_TEXT_FIELD: {"$regex": "|".join(re.escape(word) for word in dict.fromkeys(words))}}


@dataclass
class AnyFieldMatches:
    """`_any_` over several fields, matched by the gateway while it reads the cursor.

    As a MongoDB `$or` it would send nx-27017 to its slow Python path for the whole query
    (seconds at 100k tasks, even when an index narrows it); instead the rest of the filter runs
    in the server, read in order in chunks, and reading stops once the page is full. Past a scan
    budget the server is given the `$or` after all (see `read_matching`).
    """

    paths: list[str]
    pattern: re.Pattern
    condition: dict[str, Any]  # the same test as a MongoDB filter (the `$or`)

    def __call__(self, document: dict[str, Any]) -> bool:
        return any(
            isinstance(value, str) and self.pattern.search(value)
            for path in self.paths
            for value in values_at(document, path)
        )


def values_at(document: Any, path: str) -> list[Any]:
    """The values at a dotted path, through arrays (as MongoDB matches them)."""
    nodes = [document]
    for key in path.split("."):
        found = []
        for node in nodes:
            if isinstance(node, dict) and key in node:
                value = node[key]
                found.extend(value if isinstance(value, list) else [value])
            elif isinstance(node, list):
                found.extend(item[key] for item in node if isinstance(item, dict) and key in item)
        nodes = found
    return nodes


def build_filter(body: dict[str, Any], matchers: list[AnyFieldMatches] | None = None) -> dict[str, Any]:
    """The MongoDB filter of a tasks.get_all request.

    Given a `matchers` list, an `_any_` over several fields goes there instead of into the filter.
    """
    query: dict[str, Any] = {}
    for name in LIST_FIELDS:
        values = string_values(body, name, allow_null=True)
        if values:
            add_condition(query, list_field_condition(name, stored_path(name), values))
    for key in body:
        if key.startswith(LIST_FIELD_PREFIXES):
            values = string_values(body, key, allow_null=True)
            if values:
                add_condition(query, list_field_condition(key, stored_path(key), values))
        elif key in EQUALITY_FIELDS or key.startswith(EQUALITY_FIELD_PREFIXES):
            values = string_values(body, key)
            if values:
                add_condition(query, {stored_path(key): membership(list(dict.fromkeys(values)))})
    for name in PATTERN_FIELDS:
        pattern = body.get(name)
        if pattern is not None:
            if not isinstance(pattern, str):
                raise invalid_field(f"{name} must be a string")
            if pattern:
                add_condition(query, {name: regex(pattern)})
    for name in DATETIME_FIELDS:
        values = body.get(name)
        if values is not None:
            add_condition(query, datetime_condition(name, values if isinstance(values, list) else [values]))
    for name, kind in RANGE_FIELDS.items():
        if body.get(name) is not None:
            add_condition(query, range_condition(name, body[name], kind))
    for key in ("_any_", "_all_"):
        if body.get(key) is not None:
            condition = multi_field_condition(key, body[key])
            if matchers is not None and "$or" in condition:
                pattern = body[key]["pattern"]
                paths = [path for part in condition["$or"] for path in part]
                matchers.append(AnyFieldMatches(paths, re.compile(pattern, re.IGNORECASE), condition))
            else:
                add_condition(query, condition)
    if body.get("search_text") is not None:
        add_condition(query, search_text_condition(body["search_text"]))
    if not optional_bool(body, "search_hidden") and not body.get("id"):
        add_condition(query, {"system_tags": {"$nin": [HIDDEN_TAG]}})
    return query


# -- the query: filter, order, page, projection --------------------------------------------------
@dataclass
class TaskQuery:
    filter: dict[str, Any]
    sort: list[tuple[str, int]]
    skip: int
    limit: int
    only_fields: list[str] | None
    exclude_fields: list[str] = field(default_factory=list)
    requested: int | None = None
    matchers: list[AnyFieldMatches] = field(default_factory=list)


def build_sort(body: dict[str, Any]) -> list[tuple[str, int]]:
    order_by = string_values(body, "order_by") or []
    sort = []
    for key in order_by:
        if key in ("@text_score", "-@text_score"):
            continue  # no text score: search_text is a plain match here
        descending = key.startswith("-")
        path = stored_path(key[1:] if descending else key)
        if path not in (existing for existing, _ in sort):
            sort.append((path, -1 if descending else 1))
    if sort and "_id" not in (path for path, _ in sort):
        sort.append(("_id", 1))  # a unique order, so pages never overlap (as clearml-server)
    return sort


def scroll_token(position: int) -> str:
    return base64.urlsafe_b64encode(f"tasktrail-scroll:{position}".encode()).decode().rstrip("=")


def scroll_position(token: Any) -> int:
    if token is None or token == "":
        return 0
    if not isinstance(token, str):
        raise invalid_scroll_id(token)
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        prefix, _, position = text.partition(":")
        if prefix != "tasktrail-scroll" or not position.isdigit():
            raise ValueError(text)
        return int(position)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise invalid_scroll_id(token) from None


def build_paging(body: dict[str, Any]) -> tuple[int, int, int | None]:
    """(skip, limit, requested): page/page_size, or a scroll (scroll_id + size), or the first MAX.

    `requested` is the page size the client asked for when it was more than MAX_PAGE_SIZE (the
    answer then carries a scroll_id for the rest of that page).
    """
    if "scroll_id" in body:
        size = body.get("size")
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise invalid_field("an integer size of at least 1 is required with scroll_id")
        position = scroll_position(body.get("scroll_id"))
        if optional_bool(body, "refresh_scroll"):
            size, position = max(position, size), 0
        return position, min(size, MAX_PAGE_SIZE), size if size > MAX_PAGE_SIZE else None
    page = optional_int(body, "page", minimum=0)
    page_size = optional_int(body, "page_size", minimum=1)
    if page is not None and page_size is None:
        raise ApiError(400, 11, "Missing required fields: page_size is required when page is requested")
    if page_size is None:
        return 0, MAX_PAGE_SIZE, None
    limit = min(page_size, MAX_PAGE_SIZE)
    return (page or 0) * page_size, limit, page_size if page_size > MAX_PAGE_SIZE else None


def build_task_query(body: dict[str, Any]) -> TaskQuery:
    matchers: list[AnyFieldMatches] = []
    query = build_filter(body, matchers)
    sort = build_sort(body)
    skip, limit, requested = build_paging(body)
    include, exclude = [], []
    for name in string_values(body, "only_fields") or []:
        if name.startswith("-"):
            exclude.append(checked_field_name(name[1:]))
        else:
            include.append(checked_field_name(name))
    return TaskQuery(query, sort, skip, limit, include or None, exclude, requested=requested, matchers=matchers)


def task_from_view(document: dict[str, Any], only_fields: list[str] | None) -> dict[str, Any]:
    """A view document as answered: `id` first, private keys left out, only `only_fields` if given."""
    task = {"id": document["_id"]}
    task.update((key, value) for key, value in document.items() if not key.startswith("_"))
    return pick_fields(task, only_fields)


def pick_fields(task: dict[str, Any], only_fields: list[str] | None) -> dict[str, Any]:
    if not only_fields:
        return task
    picked: dict[str, Any] = {"id": task["id"]}
    for path in only_fields:
        value = get_path(task, path, default=_MISSING)
        if value is not _MISSING:
            set_path(picked, path, value)
    return picked


_MISSING = object()


def answer_task(document: dict[str, Any], query: TaskQuery) -> dict[str, Any]:
    task = {"id": document["_id"], **api_document(document)}
    for path in query.exclude_fields:
        *parents, leaf = path.split(".")
        node = get_path(task, ".".join(parents)) if parents else task
        if isinstance(node, dict):
            node.pop(leaf, None)
    return pick_fields(task, query.only_fields)


def projection(query: TaskQuery) -> dict[str, int] | None:
    """Top-level fields only (nx-27017 flattens nested projections); nested ones are picked after."""
    if not query.only_fields:
        return None
    fields = {"_id": 1}
    paths = [*query.only_fields, *(path for matcher in query.matchers for path in matcher.paths)]
    for path in paths:
        if path != "id":
            fields[path.split(".")[0]] = 1
    return fields


def matches(query: TaskQuery, document: dict[str, Any]) -> bool:
    return all(matcher(document) for matcher in query.matchers)


def find_tasks(collection: Collection, query: TaskQuery) -> list[dict[str, Any]]:
    ids = query.filter.get("_id")
    if isinstance(ids, dict) and list(ids) == ["$in"]:
        documents = find_by_ids(collection, query, ids["$in"])
    else:
        cursor = collection.find(query.filter, projection(query))
        if query.sort:
            cursor = cursor.sort(query.sort)
        if query.matchers:
            documents = read_matching(collection, query)
        else:
            documents = list(cursor.skip(query.skip).limit(query.limit))
    return [answer_task(document, query) for document in documents]


# Chunks the gateway reads while it matches `_any_` itself: growing, so an unindexed sort (which
# nx-27017 redoes for every query) is paid a few times only; past them the server matches.
SCAN_CHUNKS = (500, 1500, 4000)


def read_matching(collection: Collection, query: TaskQuery) -> list[dict[str, Any]]:
    """The page of documents the gateway's matchers accept, read in chunks of the ordered filter.

    (nx-27017 materialises a whole cursor before its first batch, so chunks are separate queries.)
    When the chunks are read and the page is still not full, the server answers the page itself
    with the matchers' `$or`: slow on nx-27017, but the scan here stays bounded.
    """
    documents, skipped, offset = [], 0, 0
    for size in SCAN_CHUNKS:
        cursor = collection.find(query.filter, projection(query))
        if query.sort:
            cursor = cursor.sort(query.sort)
        chunk = list(cursor.skip(offset).limit(size))
        for document in chunk:
            if not matches(query, document):
                continue
            if skipped < query.skip:
                skipped += 1
                continue
            documents.append(document)
            if len(documents) == query.limit:
                return documents
        if len(chunk) < size:
            return documents
        offset += len(chunk)
    server_filter = dict(query.filter)
    for matcher in query.matchers:
        add_condition(server_filter, matcher.condition)
    cursor = collection.find(server_filter, projection(query))
    if query.sort:
        cursor = cursor.sort(query.sort)
    return list(cursor.skip(query.skip).limit(query.limit))


def find_by_ids(collection: Collection, query: TaskQuery, ids: list[str]) -> list[dict[str, Any]]:
    """An id list as one equality lookup per id (an `$in` is a scan per row on nx-27017)."""
    documents = []
    for task_id in dict.fromkeys(ids):
        found = collection.find({**query.filter, "_id": task_id}, projection(query))
        documents.extend(document for document in found if matches(query, document))
    for path, direction in reversed(query.sort):
        documents.sort(key=lambda document: _sort_key(get_path(document, path)), reverse=direction < 0)
    return documents[query.skip: query.skip + query.limit]


def _sort_key(value: Any) -> tuple[int, Any]:
    """MongoDB's order of types, roughly: null, numbers, strings, objects, arrays, booleans."""
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (5, value)
    if isinstance(value, (int, float)):
        return (1, value)
    if isinstance(value, str):
        return (2, value)
    if isinstance(value, dict):
        return (3, str(sorted(value.items())))
    return (4, str(value))


async def get_all(call: Call) -> dict[str, Any]:
    query = build_task_query(call.body)
    collection = call.views[task_view.COLLECTION]
    tasks = await asyncio.to_thread(find_tasks, collection, query)
    answer: dict[str, Any] = {"tasks": tasks}
    scrolling = "scroll_id" in call.body
    if scrolling or len(tasks) == query.limit:
        # More may follow: say where (a scroll continues; a capped page or answer is never silent).
        answer["scroll_id"] = scroll_token(query.skip + len(tasks))
    return answer


# -- reading aggregates --------------------------------------------------------------------------
def load_task(call: Call, task_id: str) -> Task:
    task = call.app.get_task(parse_task_id(task_id).hex)
    if task.is_deleted:
        raise TaskNotFound(f"Invalid task id: {task_id}")
    return task


async def load_tasks(call: Call, key: str = "tasks") -> list[Task]:
    task_ids = string_values(call.body, key)
    if not task_ids:
        raise missing_field(key)
    return await asyncio.to_thread(lambda: [load_task(call, task_id) for task_id in dict.fromkeys(task_ids)])


async def get_by_id(call: Call) -> dict[str, Any]:
    task_id = required_string(call.body, "task")
    task = await asyncio.to_thread(load_task, call, task_id)
    return {"task": {"id": task.task_id, **api_document(task.doc)}}


def hyperparams_list(task: Task) -> list[dict[str, Any]]:
    items = []
    for section, params in (task.doc.get("hyperparams") or {}).items():
        for name, item in (params or {}).items():
            items.append({"section": unescape_key(section), "name": unescape_key(name), **(item or {})})
    return sorted(items, key=lambda item: (item["section"], item["name"]))


def configuration_list(task: Task, names: list[str] | None = None) -> list[dict[str, Any]]:
    items = [
        {"name": unescape_key(name), **(item or {})}
        for name, item in (task.doc.get("configuration") or {}).items()
    ]
    if names:
        items = [item for item in items if item["name"] in names]
    return sorted(items, key=lambda item: item["name"])


async def get_hyper_params(call: Call) -> dict[str, Any]:
    tasks = await load_tasks(call)
    return {"params": [{"task": task.task_id, "hyperparams": hyperparams_list(task)} for task in tasks]}


async def get_configurations(call: Call) -> dict[str, Any]:
    names = optional_string_list(call.body, "names")
    tasks = await load_tasks(call)
    return {
        "configurations": [
            {"task": task.task_id, "configuration": configuration_list(task, names)} for task in tasks
        ]
    }


async def get_configuration_names(call: Call) -> dict[str, Any]:
    skip_empty = optional_bool(call.body, "skip_empty", default=True)
    tasks = await load_tasks(call)
    return {
        "configurations": [
            {
                "task": task.task_id,
                "names": [
                    item["name"] for item in configuration_list(task) if item.get("value") or not skip_empty
                ],
            }
            for task in tasks
        ]
    }


async def get_types(call: Call) -> dict[str, Any]:
    """The task types used (in the given projects), from the view."""
    projects = optional_string_list(call.body, "projects")
    query = {"project": membership(projects)} if projects else {}
    collection = call.views[task_view.COLLECTION]
    types = await asyncio.to_thread(collection.distinct, "type", query)
    return {"types": sorted(set(types) & set(TASK_TYPES))}
