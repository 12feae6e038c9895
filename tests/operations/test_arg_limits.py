"""Arguments cannot stall or sink a step: linear parsing, capped strings and lists (issue 11).

The functions that read argument text with Python code are timed on adversarial 100 KB inputs;
every string and list argument is capped through the live API (422 naming the argument); and
/health keeps answering while a 100 KB "1111...1x" filter value is processed. The upload
inspection's tag finder, the one other Python pattern that backtracked, is timed as well.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest

from chatflow.failures import StepFailed
from chatflow.operations.columns import parse_template
from chatflow.operations.limits import MAX_ITEMS
from chatflow.operations.patterns import check_regex, check_strftime
from chatflow.operations.values import is_number_text, iso_value, number_value
from chatflow.spreadsheets.inspection import root_tag
from tests.step_harness import StepHarness
from tests.support import (
    POSTAL_ROWS,
    LiveServer,
    create_chat,
    make_settings,
    run_server,
    upload,
    write_xlsx,
)

API = "/api/v1"
ADVERSARIAL = "1" * 100_000 + "x"  # the issue's freeze, five times longer


def _quiet(fn: Callable[[str], object]) -> Callable[[str], object]:
    """``fn`` with its refusals swallowed: only its running time matters here."""

    def call(text: str) -> object:
        try:
            return fn(text)
        except ValueError:  # pydantic's errors are ValueErrors too
            return None

    return call


# (function, adversarial input of n characters): each was, or could have been, superlinear.
CASES: dict[str, tuple[Callable[[str], object], Callable[[int], str]]] = {
    "number_value 111..1x": (number_value, lambda n: "1" * n + "x"),
    "number_value 1.111..1ex": (number_value, lambda n: "1." + "1" * n + "ex"),
    "number_value +.1e1..1-": (number_value, lambda n: "+.1e" + "1" * n + "-"),
    "is_number_text 1.1.1.": (is_number_text, lambda n: "1." * (n // 2)),
    "iso_value digits": (iso_value, lambda n: "2024-01-01 " + "1" * n),
    "parse_template {a{a": (_quiet(parse_template), lambda n: "{a" * (n // 2)),
    "parse_template {aaa": (_quiet(parse_template), lambda n: "{" + "a" * n),
    "parse_template {{": (_quiet(parse_template), lambda n: "{{" * (n // 2) + "{a}"),
    "check_strftime %%%": (_quiet(check_strftime), lambda n: "%" * n),
    "check_regex (a+)+b": (_quiet(check_regex), lambda n: "(a+)+" * (n // 5) + "b"),
}


def _best_time(fn: Callable[[Any], object], text: str | bytes) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        fn(text)
        best = min(best, time.perf_counter() - start)
    return best


@pytest.mark.parametrize("name", sorted(CASES))
def test_argument_parsing_is_linear_on_adversarial_input(name: str) -> None:
    fn, make = CASES[name]
    small, large = _best_time(fn, make(10_000)), _best_time(fn, make(100_000))
    # Quadratic growth would make the large input 100 times slower (number_value took 1.4 s
    # at 8 KB before); linear growth is 10 times, with slack for timer noise on tiny times.
    assert large < 0.25, (name, small, large)
    assert large < 30 * small + 0.02, (name, small, large)


def test_number_text_rule_is_unchanged() -> None:
    numbers = ["12", "-3.5", ".5", "1e3", "+1.E-2", "1.", " 7 ", "0012", "1E+05"]
    others = ["", ".", "e3", "1e", "1e+", "inf", "nan", "0x1F", "1_000", "١٢", "1.2.3", "--1"]
    assert [number_value(t) for t in numbers] == [12, -3.5, 0.5, 1000, 0.01, 1, 7, 12, 1e5]
    assert [number_value(t) for t in others] == [None] * len(others)


# --- caps through the live API -------------------------------------------------------------


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, str]]:
    """A server with a 100-character text cap and a 300-character query cap, and a chat."""
    tmp = tmp_path_factory.mktemp("capped")
    settings = make_settings(tmp / "data", max_text_chars=100, max_query_chars=300)
    with run_server(settings) as live, httpx.Client(base_url=live.url, timeout=60) as client:
        chat_id = create_chat(client)
        assert (
            upload(client, chat_id, write_xlsx(tmp / "data.xlsx", POSTAL_ROWS)).status_code == 201
        )
        yield client, chat_id


def _step(operation: str, **arguments: Any) -> dict[str, Any]:
    return {"steps": [{"operation": operation, "arguments": arguments}]}


LONG = "z" * 101
TOO_LONG = "at most 100 characters (CHATFLOW_MAX_TEXT_CHARS); 101 given"

# (request, the argument's location, message tail): one of every kind of string argument.
OVERSIZED: list[tuple[dict[str, Any], list[Any], str]] = [
    (
        _step(
            "excel/filter-rows",
            conditions=[
                {"column": "city", "op": "eq", "value": "Porto"},
                {"column": "postal_code", "op": "gt", "value": LONG},
            ],
        ),
        ["conditions", 1, "value"],
        TOO_LONG,
    ),
    (
        _step("excel/filter-rows", conditions=[{"column": "city", "op": "regex", "value": LONG}]),
        ["conditions", 0, "value"],
        TOO_LONG,
    ),
    (
        _step(
            "excel/filter-rows", conditions=[{"column": "city", "op": "in", "value": ["a", LONG]}]
        ),
        ["conditions", 0, "value", 1],
        TOO_LONG,
    ),
    (_step("excel/add-column", name="n", template=LONG), ["template"], TOO_LONG),
    (_step("excel/add-column", name=LONG, value=1), ["name"], TOO_LONG),
    (_step("excel/select-columns", columns=["city", LONG]), ["columns", 1], TOO_LONG),
    (_step("excel/rename-columns", mapping={"city": LONG}), ["mapping", "city"], TOO_LONG),
    (
        _step("excel/rename-columns", mapping={LONG: "town"}),
        ["mapping", "z" * 40 + "…"],
        "this key: " + TOO_LONG,
    ),
    (_step("excel/find-replace", find="a", replace=LONG), ["replace"], TOO_LONG),
    (_step("excel/sort", by=[{"column": "city"}], output=LONG), ["output"], TOO_LONG),
    (
        _step("excel/sql", query="SELECT * FROM input" + " " * 282),
        ["query"],
        "at most 300 characters (CHATFLOW_MAX_QUERY_CHARS); 301 given",
    ),
    (
        _step("excel/select-columns", columns=[f"c{i}" for i in range(MAX_ITEMS + 1)]),
        ["columns"],
        f"at most {MAX_ITEMS} items; {MAX_ITEMS + 1} given",
    ),
]


@pytest.mark.parametrize("dry_run", [False, True])
@pytest.mark.parametrize("case", range(len(OVERSIZED)))
def test_an_oversized_argument_is_a_422_naming_it(
    capped: tuple[httpx.Client, str], case: int, dry_run: bool
) -> None:
    client, chat_id = capped
    body, loc, tail = OVERSIZED[case]
    suffix = "?dry_run=true" if dry_run else ""
    response = client.post(f"{API}/chat/workflows/{chat_id}/execute{suffix}", json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_arguments"
    operation = body["steps"][0]["operation"]
    where = ".".join(str(part) for part in loc)
    assert error["message"] == f"steps[0] ({operation}): {where}: {tail}"
    assert error["details"]["errors"][0]["loc"] == loc
    kind = "too_many_items" if "items" in tail else "text_too_long"
    assert error["details"]["errors"][0]["type"] == kind
    assert LONG not in response.text  # the answer does not echo the oversized text
    runs = client.get(f"{API}/chat/workflows/{chat_id}/runs").json()["data"]
    assert runs == []


def test_arguments_at_the_caps_are_accepted(capped: tuple[httpx.Client, str]) -> None:
    client, chat_id = capped
    at_cap = "z" * 100
    body = {
        "steps": [
            {
                "operation": "excel/filter-rows",
                "arguments": {"conditions": [{"column": "city", "op": "ne", "value": at_cap}]},
            },
            {"operation": "excel/add-column", "arguments": {"name": "n", "template": at_cap}},
            {"operation": "excel/sql", "arguments": {"query": "SELECT * FROM input" + " " * 281}},
        ]
    }
    response = client.post(f"{API}/chat/workflows/{chat_id}/execute?dry_run=true", json=body)
    assert response.status_code == 200, response.text
    steps = response.json()["data"]["steps"]
    assert [s["row_count"] for s in steps] == [5, 5, 5]


def test_saved_workflows_keep_the_same_caps(capped: tuple[httpx.Client, str]) -> None:
    client, chat_id = capped
    body = {"name": "long", **_step("excel/add-column", name="n", template=LONG)}
    response = client.post(f"{API}/chat/workflows/{chat_id}/workflows", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_arguments"
    assert response.json()["error"]["message"].endswith(f"template: {TOO_LONG}")


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (
            _step("excel/filter-rows", conditions=[{"column": "city", "op": "not_empty"}] * 201),
            "conditions",
        ),
        (
            _step(
                "excel/split-column",
                column="city",
                delimiter=" ",
                into=[f"p{i}" for i in range(1001)],
            ),
            "into",
        ),
    ],
)
def test_lists_that_drive_cost_are_capped(
    capped: tuple[httpx.Client, str], body: dict[str, Any], where: str
) -> None:
    client, chat_id = capped
    response = client.post(f"{API}/chat/workflows/{chat_id}/execute?dry_run=true", json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_arguments"
    assert error["details"]["errors"][0]["type"] == "too_long"
    assert error["details"]["errors"][0]["loc"] == [where]


def test_default_caps_refuse_the_issues_value(client: httpx.Client, tmp_path: Path) -> None:
    chat_id = create_chat(client)
    upload(client, chat_id, write_xlsx(tmp_path / "data.xlsx", POSTAL_ROWS))
    body = _step(
        "excel/filter-rows",
        conditions=[{"column": "postal_code", "op": "gt", "value": "1" * 20_000 + "x"}],
    )
    response = client.post(f"{API}/chat/workflows/{chat_id}/execute", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["message"] == (
        "steps[0] (excel/filter-rows): conditions.0.value: "
        "at most 10000 characters (CHATFLOW_MAX_TEXT_CHARS); 20001 given"
    )


# --- the event loop keeps answering ---------------------------------------------------------


class HealthProbe:
    """Polls /health from a thread; records the slowest answer."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.slowest = 0.0
        self.answers = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        with httpx.Client(timeout=10) as http:
            while not self._stop.is_set():
                start = time.perf_counter()
                try:
                    status = http.get(f"{self.url}{API}/health").status_code
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                    continue
                self.slowest = max(self.slowest, time.perf_counter() - start)
                self.answers += 1
                if status != 200:
                    self.failures.append(f"status {status}")
                time.sleep(0.02)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)


@pytest.fixture(scope="module")
def roomy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server whose text cap lets a 100 KB value through to the step."""
    tmp = tmp_path_factory.mktemp("roomy")
    with run_server(make_settings(tmp / "data", max_text_chars=200_000)) as live:
        yield live


@pytest.mark.parametrize("dry_run", [True, False])
def test_health_answers_while_a_100_kb_value_is_processed(
    roomy: LiveServer, tmp_path: Path, dry_run: bool
) -> None:
    rows = [["code", "city"], *[[f"{i:05d}", "Porto"] for i in range(2000)], ["1" * 50, "Lisbon"]]
    with httpx.Client(base_url=roomy.url, timeout=120) as client:
        chat_id = create_chat(client)
        upload(client, chat_id, write_xlsx(tmp_path / "codes.xlsx", rows))
        conditions = [
            {"column": "code", "op": "gt", "value": ADVERSARIAL},
            {"column": "code", "op": "lt", "value": ADVERSARIAL},
            {"column": "city", "op": "ne", "value": ADVERSARIAL},
        ]
        body = _step("excel/filter-rows", conditions=conditions, match="any")
        url = f"{API}/chat/workflows/{chat_id}/execute" + (
            "?dry_run=true" if dry_run else "?wait=true"
        )
        with HealthProbe(roomy.url) as probe:
            for _ in range(3):  # several requests, so the probe sees the work in progress
                response = client.post(url, json=body)
                assert response.status_code == 200, response.text
    data = response.json()["data"]
    if dry_run:
        assert data["steps"][0]["row_count"] == 1000  # the whole sample: every city is ne
    else:
        assert data["status"] == "completed", data
        assert data["steps"][0]["result"]["removed"] == 0
    assert probe.failures == []
    assert probe.answers >= 3
    assert probe.slowest < 1.0, probe.slowest


# --- uploads: the inspection's one pattern that backtracked -------------------------------

_OLD_ROOT = re.compile(rb"<(?![?!/])(?:[\w.-]+:)?([\w.-]+)([^>]*)>")


def test_root_tag_finds_what_the_old_pattern_found() -> None:
    pieces = [b"<", b">", b"?", b"!", b"/", b"a", b":", b".", b" ", b"-", b"_", b"0", b"\xc3\xa9"]
    rng = random.Random(11)
    for _ in range(50_000):
        text = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        old = _OLD_ROOT.search(text)
        assert root_tag(text) == (None if old is None else old.groups()), text
    assert root_tag(b'<?xml?><x:sst count="5"><si>') == (b"sst", b' count="5"')


@pytest.mark.parametrize(
    "make", [lambda n: b"<" + b"a" * n, lambda n: b"<" * n, lambda n: b"<a:" * (n // 3)]
)
def test_root_tag_is_linear(make: Callable[[int], bytes]) -> None:
    small, large = (_best_time(root_tag, make(n)) for n in (100_000, 1_000_000))
    # The old pattern took 1.4 s on 20 KB of "<aaa..."; a part's tail may hold 1 MB.
    assert large < 0.25, (small, large)
    assert large < 30 * small + 0.02, (small, large)


def test_messages_quote_long_arguments_cut(tmp_path: Path) -> None:
    long_text = "9" * 5000 + "x"
    harness = StepHarness(tmp_path, pl.DataFrame({"n": [1, 2], "t": ["a", "b"]}))
    with pytest.raises(StepFailed) as caught:
        harness.run(
            "excel/filter-rows", {"conditions": [{"column": "n", "op": "gt", "value": long_text}]}
        )
    assert caught.value.code == "column_type_mismatch"
    assert f"and '{'9' * 59}…' is not one." in caught.value.message
    harness.run("excel/find-replace", {"find": "a", "replace": long_text})
    assert max(len(message) for _, message in harness.reports) < 200


INT64_MAX = 2**63 - 1


def test_whole_numbers_past_64_bits_are_a_422_naming_the_argument(
    capped: tuple[httpx.Client, str],
) -> None:
    client, chat_id = capped
    value = {"column": "city", "op": "in", "value": ["Porto", INT64_MAX + 1]}
    body = _step("excel/filter-rows", conditions=[value])
    response = client.post(f"{API}/chat/workflows/{chat_id}/execute", json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_arguments"
    assert error["details"]["errors"][0] == {
        "loc": ["conditions", 0, "value", 1],
        "msg": "whole numbers must lie between -9223372036854775808 and 9223372036854775807; "
        "write a larger one with a decimal point or exponent (1e30)",
        "type": "number_too_large",
    }


# Arguments at the edges of the 64-bit range: each step runs or fails with its own code.
EDGES: list[tuple[str, dict[str, Any], int | None]] = [
    ("excel/filter-rows", {"conditions": [{"column": "n", "op": "eq", "value": INT64_MAX}]}, 0),
    (
        "excel/filter-rows",
        {"conditions": [{"column": "n", "op": "gt", "value": -INT64_MAX - 1}]},
        3,
    ),
    ("excel/filter-rows", {"conditions": [{"column": "t", "op": "gt", "value": INT64_MAX}]}, 0),
    (
        "excel/filter-rows",
        {"conditions": [{"column": "f", "op": "in", "value": [INT64_MAX, 2.5]}]},
        1,
    ),
    ("excel/filter-rows", {"conditions": [{"column": "u", "op": "eq", "value": -1}]}, 0),
    ("excel/add-column", {"name": "x", "row_number": True, "start": 10**15}, 3),
    ("excel/add-column", {"name": "x", "value": INT64_MAX}, 3),
    ("excel/split-file", {"by": "row_count", "rows": INT64_MAX}, 3),
    ("excel/value-counts", {"column": "t", "top_n": INT64_MAX}, 3),
    ("excel/split-column", {"column": "t", "delimiter": ",", "max_splits": INT64_MAX}, 3),
    ("excel/validate", {"rules": [{"column": "t", "min_length": INT64_MAX}]}, 0),
    ("excel/fill-empty", {"columns": ["f"], "strategy": "value", "value": INT64_MAX}, 3),
]


@pytest.mark.parametrize("case", range(len(EDGES)))
def test_64_bit_edge_numbers_run(tmp_path: Path, case: int) -> None:
    operation, arguments, rows = EDGES[case]
    table = pl.DataFrame(
        {
            "n": [1, 2, 3],
            "t": ["a", "b", "c"],
            "f": [1.5, 2.5, None],
            "u": pl.Series([1, 2, 3], dtype=pl.UInt8),
        }
    )
    out = StepHarness(tmp_path, table).run(operation, arguments)
    assert out.table is not None and out.table.height == rows


def test_row_numbers_start_within_15_digits(capped: tuple[httpx.Client, str]) -> None:
    client, chat_id = capped
    body = _step("excel/add-column", name="n", row_number=True, start=10**15 + 1)
    response = client.post(f"{API}/chat/workflows/{chat_id}/execute", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"]["errors"][0]["loc"] == ["start"]
