"""The catalogue through the API: every operation listed and round-trippable, a 5-step chain."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import openpyxl
import polars as pl
import pytest

from chatflow.operations import load_all
from chatflow.operations.catalogue import COMMAND, README, operations_table, with_table
from chatflow.operations.registry import COLUMN_MARK, Registry
from chatflow.operations.steps import Outcome, SheetArgs, TableArgs, operation
from tests.support import LiveServer, create_chat, upload, write_xlsx

API = "/api/v1"
CATALOGUE = load_all().names()  # registration order, as GET /operations lists them


def test_the_readme_operation_table_is_generated_from_the_registry() -> None:
    readme = README.read_text(encoding="utf-8")
    assert with_table(readme, operations_table()) == readme, (
        f"README.md's operation table is stale; regenerate it: PYTHONPATH=src {COMMAND}"
    )


@pytest.mark.parametrize("name", CATALOGUE)
def test_the_pre_run_check_and_the_step_need_the_same_columns(name: str) -> None:
    operation = load_all().get(name)
    assert operation is not None and operation.input_columns is not None
    args = operation.args_model.model_validate(operation.example)
    assert operation.input_columns(args) == args.needed_columns()


@pytest.mark.parametrize("name", CATALOGUE)
def test_the_arguments_that_name_input_columns_are_marked_so(name: str) -> None:
    """A top-level argument is marked ``COLUMN_MARK`` exactly when the example's value(s) of it
    are columns the step needs: clients offer the input's columns for a marked one."""
    operation = load_all().get(name)
    assert operation is not None and operation.input_columns is not None
    needed = set(operation.input_columns(operation.args_model.model_validate(operation.example)))
    properties = operation.json_schema()["properties"]
    marked = {key for key, schema in properties.items() if schema.get(COLUMN_MARK) is True}
    naming = {
        key
        for key, value in operation.example.items()
        if (values := value if isinstance(value, list) else [value])
        and all(isinstance(v, str) and v in needed for v in values)
    }
    assert marked >= naming, f"mark these with INPUT_COLUMNS: {sorted(naming - marked)}"
    for key in marked & set(operation.example):
        value = operation.example[key]
        assert set(value if isinstance(value, list) else [value]) <= needed, key


def test_shared_arguments_are_listed_after_an_operations_own() -> None:
    for op in load_all().all():
        own = {
            n
            for k in op.args_model.__mro__
            for n in vars(k).get("__annotations__", {})
            if k not in (SheetArgs, TableArgs)
        }
        shared = [n for n in ("sheet", "output") if n in op.args_model.model_fields]
        if not own & set(shared):
            assert list(op.json_schema()["properties"])[-len(shared) :] == shared, op.name


class NothingArgs(TableArgs):
    """Arguments of test/nothing (module level: the decorator resolves the annotation)."""


def test_the_decorator_describes_an_operation_by_its_docstring() -> None:
    registry = Registry()

    @operation("test/nothing", example={}, doing=lambda df, args: "Nothing", into=registry)
    def nothing(df: pl.DataFrame, args: NothingArgs) -> Outcome:
        """Do nothing
        at all.

        The table goes on as it came."""
        return Outcome(df, "Did nothing")

    registered = registry.get("test/nothing")
    assert registered is not None and registered.args_model is NothingArgs
    assert registered.description == "Do nothing at all. The table goes on as it came."
    assert registered.summary == "Do nothing at all"


ORDERS = [
    ["order_id", "customer", "zip", "amount", "status"],
    ["A-1", "  ana  ", "1234", "10.5", "paid"],
    ["A-2", "Ben", "98765", "99", "paid"],
    ["A-3", "cy", "1234", "5", "refunded"],
    ["A-2", "Ben", "98765", "99", "paid"],
    ["A-4", '=HYPERLINK("http://x")', "501", "42", "paid"],
]


def test_every_operation_is_served_with_schema_and_example(client: httpx.Client) -> None:
    served = {op["name"]: op for op in client.get(f"{API}/operations").json()["data"]}
    assert list(served) == CATALOGUE
    for name in CATALOGUE:
        assert served[name]["description"]
        assert served[name]["arguments_schema"]["type"] == "object"
        assert isinstance(served[name]["example"], dict)


@pytest.mark.parametrize("name", CATALOGUE)
def test_examples_validate_and_survive_being_stored(name: str) -> None:
    """Runs store model_dump() of the arguments and validate it again when they start."""
    operation = load_all().get(name)
    assert operation is not None
    args = operation.args_model.model_validate(operation.example)
    again = operation.args_model.model_validate(args.model_dump(mode="json"))
    assert again == args


def test_a_five_step_chain_in_memory_written_once(
    server: LiveServer, client: httpx.Client, tmp_path: Path
) -> None:
    chat_id = create_chat(client)
    assert upload(client, chat_id, write_xlsx(tmp_path / "orders.xlsx", ORDERS)).status_code == 201
    steps = [
        {"operation": "excel/clean-text", "arguments": {"columns": ["customer"], "case": "title"}},
        {"operation": "excel/normalize-codes", "arguments": {"column": "zip", "pad_to": 5}},
        {"operation": "excel/remove-duplicates", "arguments": {}},
        {
            "operation": "excel/filter-rows",
            "arguments": {"conditions": [{"column": "status", "op": "eq", "value": "paid"}]},
        },
        {
            "operation": "excel/sort",
            "arguments": {"by": [{"column": "amount", "descending": True}]},
        },
    ]
    run = client.post(
        f"{API}/chat/workflows/{chat_id}/execute", params={"wait": "true"}, json={"steps": steps}
    ).json()["data"]
    assert run["status"] == "completed", run
    assert [s["status"] for s in run["steps"]] == ["completed"] * 5
    (output,) = run["outputs"]  # one file: the chain's tables stayed in memory
    assert output["row_count"] == 3
    body = client.get(output["download_url"]).content
    sheet = openpyxl.load_workbook(io.BytesIO(body)).active
    assert sheet is not None
    rows = [[c.value for c in row] for row in sheet.iter_rows()]
    assert rows == [
        ["order_id", "customer", "zip", "amount", "status"],
        ["A-2", "Ben", "98765", "99", "paid"],
        ["A-4", '=Hyperlink("Http://X")', "00501", "42", "paid"],
        ["A-1", "Ana", "01234", "10.5", "paid"],
    ]
    assert {c.data_type for row in sheet.iter_rows() for c in row} == {"s"}  # no formula cells
