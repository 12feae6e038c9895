"""Every operation's arguments, generated from its own JSON Schema, against a live server.

The schemas come from ``GET /api/v1/operations``; the strategies below turn JSON Schema
(``type``, ``enum``, ``anyOf``, ``$ref``, ``required``, min/max bounds) into argument objects,
mostly inside the bounds and sometimes on or past them: huge and negative numbers, empty lists
and strings, 10 KB strings, RTL/zero-width/emoji text, regex metacharacters, column, file and
sheet names that exist and that do not. Each example is a workflow of one or two steps of one
operation over a small typed xlsx or csv (whole numbers, decimals, text, dates, booleans,
empties), sent as a dry run and as a real run.

What must hold for every example: no 5xx and no stack trace in any answer; a refused workflow
is a JSON error with a code; a real run ends (``completed``, or ``failed`` with a code that
names the problem: never ``internal_error``, ``step_error`` or ``timeout``); ``/health``
answers within 1 s the whole time (a thread polls it throughout); and the resident memory of
the test process (the server runs in it) plus all its descendants (step workers, inspection
children) stays within ``RSS_GROWTH_MB`` of what it was after a warm-up run.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, event, given, note, reject, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from chatflow.operations import load_all
from chatflow.operations.limits import Limits
from tests.fixtures_util import make_xlsx
from tests.support import LiveServer, make_settings, run_server

pytestmark = pytest.mark.slow  # fuzzing

API = "/api/v1"
REGISTRY = load_all()
OPERATIONS = sorted(REGISTRY.names())
EXAMPLES_PER_OPERATION = 9  # x 29 operations: ~260 workflows, each a dry run and a real run
HEALTH_BUDGET_S = 1.0
# The inputs have six rows: a legitimate step needs a few MB. 1 GiB above the warmed-up
# process tree leaves room for the step worker processes started later (each imports polars,
# ~150 MB) while catching what the issue saw: a join or pivot materialising millions of rows
# (the 12,000 x 12,000 join took several GB before the kernel killed the server).
RSS_GROWTH_MB = 1024
BAD_ENDINGS = {"internal_error", "step_error", "timeout", "interrupted"}

COLUMNS = ["id", "amount", "name", "day", "flag", "code", "note"]
ROWS: list[list[Any]] = [
    [1, 120.0, "Ann", dt.date(2024, 1, 31), True, "01234", None],
    [2, -80.5, "bob ", dt.date(2024, 2, 29), False, "98765", "x"],
    [3, 3.5, "Zoë", None, True, "01234", None],
    [4, None, "", dt.date(1999, 12, 31), None, "00501", None],
    [5, 0.0, "عربي", dt.date(2024, 3, 1), False, None, "=1+1"],
    [6, 1e15, "a.*b", dt.date(2030, 6, 15), True, "1e5", None],
]
UPLOADS = ["typed.xlsx", "typed.csv", "lookup.csv"]
SHEETS = ["Data", "Other"]

_QUERIES = [
    "SELECT * FROM input",
    "SELECT id, SUM(amount) AS s FROM input GROUP BY id ORDER BY id",
    "SELECT a.id, b.name FROM input a CROSS JOIN input b",
    "SELECT i.*, l.region FROM input i LEFT JOIN lookup l ON i.code = l.code",
    "SELECT COUNT(*) AS n FROM input WHERE day >= '2024-01-01'",
    "SELECT * FROM input WHERE name LIKE '%a%' LIMIT 3",
]
# What a property of each name sensibly holds; other names are column names.
_KNOWN: dict[str, list[str]] = {
    "file": UPLOADS,
    "sheet": SHEETS,
    "fresh": ["total", "new_col", "part", "source", "x y"],
    "output": ["out.xlsx", "out.csv", "out.parquet", "out"],
    "query": _QUERIES,
    "template": ["{name}-{id}", "{day} {amount} {flag}", "{{literal}} {code}"],
    "pattern": ["Ann", "0", "^0\\d+$", "[a-z]+", " "],
    "format": ["%Y-%m-%d", "%d/%m/%Y"],
    "value": ["Ann", "01234", "2024-01-31", "x", "true", "120", "3.5", ""],
    "column": COLUMNS,
}
_HINTS = {
    "right_file": "file", "files": "file", "right_sheet": "sheet", "invalid_output": "output",
    "name": "fresh", "into": "fresh", "into_prefix": "fresh", "as": "fresh", "suffix": "fresh",
    "add_source_column": "fresh", "variable_name": "fresh", "value_name": "fresh",
    "name_prefix": "fresh", "mapping": "fresh",
    "regex": "pattern", "find": "pattern", "delimiter": "pattern", "separator": "pattern",
    "pad_char": "pattern", "replace": "value", "allowed": "value",
    "values": "column",  # pivot's value column
}  # fmt: skip
# Edge text, for every string: names that do not exist and the values the issue lists.
_EDGE_TEXT = [
    "", " ", "x" * 10_000,
    "1" * 10_000 + "x",  # the freeze: a number-like 10 KB value
    "\u202eabc\u202c", "a\u200bb\u200d",  # RTL override; zero-width space and joiner
    "\u0645\u0631\u062d\u0628\u0627", "😀👍🏽🇵🇹", "e\u0301", "\x00", "\n\r\t",
    "../../etc/passwd", '=HYPERLINK("http://x")', "NaN", "1e400",
    "nope", "ID", "id ", "amount\u200b", "missing.csv",
    "SELECT", "SELECT nope FROM input", "{nope}", "{",
    ".*", "(a+)+$", "(", "[", "\\", "^$", "(?i)ann", "a{1,99999}", "[[:alpha:]]", "$1",
]  # fmt: skip


def _text(hint: str, edgy: bool) -> st.SearchStrategy[str]:
    """A property's strings: the values its name suggests; in edgy mode also the edge text."""
    known = st.sampled_from(_KNOWN.get(_HINTS.get(hint, hint), COLUMNS))
    if not edgy:
        return known
    return st.one_of(known, st.sampled_from(COLUMNS), st.sampled_from(_EDGE_TEXT), st.text())


def _integers(schema: dict[str, Any], edgy: bool) -> st.SearchStrategy[int]:
    low, high = schema.get("minimum"), schema.get("maximum")
    inside = st.integers(low if low is not None else -10, high if high is not None else 10)
    if not edgy:
        return inside
    edges = [0, -1, 1, 10**30, -(10**30), 2**63, 2**31]
    edges += [b + d for b in (low, high) if b is not None for d in (-1, 0, 1)]
    return st.one_of(inside, st.sampled_from(edges))


def _numbers(schema: dict[str, Any], edgy: bool) -> st.SearchStrategy[float]:
    low, high = schema.get("minimum"), schema.get("maximum")
    inside = st.floats(
        low if low is not None else -1e3,
        high if high is not None else 1e3,
        allow_nan=False,
        allow_infinity=False,
    )
    if not edgy:
        return inside
    return st.one_of(inside, st.sampled_from([-0.0, 1e308, -1e308, 1e30, 5e-324]))


@dataclass
class Schemas:
    """One operation's JSON Schema (with its ``$defs``) turned into argument strategies."""

    defs: dict[str, Any]
    edgy: bool  # False: inside every bound, names that exist; True: edges injected as well

    def strategy(self, schema: dict[str, Any], hint: str = "") -> st.SearchStrategy[Any]:
        if "$ref" in schema:
            return self.strategy(self.defs[schema["$ref"].rsplit("/", 1)[-1]], hint)
        if "anyOf" in schema:
            return st.one_of([self.strategy(s, hint) for s in schema["anyOf"]])
        if "enum" in schema:
            valid = st.sampled_from(schema["enum"])
            return (
                st.one_of(valid, valid, valid, st.sampled_from(_EDGE_TEXT)) if self.edgy else valid
            )
        kind = schema.get("type")
        if kind == "string":
            return self._string(schema, hint)
        if kind == "integer":
            return _integers(schema, self.edgy)
        if kind == "number":
            return _numbers(schema, self.edgy)
        if kind == "boolean":
            return st.booleans()
        if kind == "null":
            return st.none()
        if kind == "array":
            return self._array(schema, hint)
        if kind == "object":
            return self._object(schema, hint)
        return st.one_of(st.none(), st.booleans(), st.integers(), _text(hint, self.edgy))

    def _string(self, schema: dict[str, Any], hint: str) -> st.SearchStrategy[str]:
        low, high = schema.get("minLength", 0), schema.get("maxLength")
        text = _text(hint, self.edgy)
        fitting = text.filter(lambda s: len(s) >= low and (high is None or len(s) <= high))
        return st.one_of(fitting, fitting, text) if self.edgy else fitting

    def _array(self, schema: dict[str, Any], hint: str) -> st.SearchStrategy[list[Any]]:
        low = schema.get("minItems", 0)
        high = min(schema.get("maxItems", low + 3), low + 3)
        items = self.strategy(schema.get("items", {}), hint)
        if self.edgy:
            return st.one_of(st.lists(items, min_size=low, max_size=high), st.just([]))
        return st.lists(items, min_size=low, max_size=high, unique_by=repr)

    def _object(self, schema: dict[str, Any], hint: str) -> st.SearchStrategy[Any]:
        properties: dict[str, Any] = schema.get("properties", {})
        if not properties and isinstance(schema.get("additionalProperties"), dict):
            low = schema.get("minProperties", 0)
            high = min(schema.get("maxProperties", low + 2), low + 2)
            values = self.strategy(schema["additionalProperties"], hint)
            keys = _text("column", self.edgy)
            return st.dictionaries(keys, values, min_size=low, max_size=high)
        required = set(schema.get("required", []))
        if not self.edgy:  # a sheet other than the default is seldom one the input has
            properties = {k: v for k, v in properties.items() if k not in ("sheet", "right_sheet")}
        return st.fixed_dictionaries(
            {name: self.strategy(s, name) for name, s in properties.items() if name in required},
            optional={
                name: self.strategy(s, name)
                for name, s in properties.items()
                if name not in required
            },
        )


@dataclass
class HealthWatch:
    """A thread polling /health; the slowest answer (or failure) since the last reset."""

    url: str
    worst_s: float = 0.0
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(timeout=HEALTH_BUDGET_S * 5) as http:
            while not self.stop.is_set():
                started = time.monotonic()
                try:
                    status = http.get(self.url).status_code
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                else:
                    if status != 200:
                        self.failures.append(f"status {status}")
                self.worst_s = max(self.worst_s, time.monotonic() - started)
                self.stop.wait(0.1)

    def reset(self) -> None:
        self.worst_s, self.failures = 0.0, []


def _tree_rss_kb(pid: int) -> int:
    """VmRSS of ``pid`` and every live descendant, in kB."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: the fields follow the last ")".
        parents[int(stat.parent.name)] = int(text.rsplit(")", 1)[1].split()[1])
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        children = [p for p, pp in parents.items() if pp == parent and p not in tree]
        tree.update(children)
        frontier.extend(children)
    total = 0
    for member in tree:
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


@dataclass
class Fuzzing:
    """The live server, a chat holding the typed inputs, the catalogue, the health thread."""

    server: LiveServer
    http: httpx.Client
    chat_id: str
    catalogue: dict[str, dict[str, Any]]
    originals: dict[str, str]  # upload name -> sha256, to put back an input a step replaced
    sources: dict[str, Path]
    health: HealthWatch
    rss_baseline_kb: int = 0

    @property
    def base(self) -> str:
        return f"{API}/chat/workflows/{self.chat_id}"

    def upload(self, name: str) -> dict[str, Any]:
        response = self.http.post(
            f"{self.base}/upload", files={"file": (name, self.sources[name].read_bytes())}
        )
        assert response.status_code == 201, response.text
        return dict(response.json()["data"][0])

    def restore_inputs(self) -> None:
        """An output named like an input is a new version of it: upload the original again."""
        files = self.http.get(f"{self.base}/files").json()["data"]
        latest: dict[str, dict[str, Any]] = {}
        for f in files:
            if f["version"] > latest.get(f["filename"], {"version": 0})["version"]:
                latest[f["filename"]] = f
        for name, sha in self.originals.items():
            if latest[name]["sha256"] != sha:
                self.upload(name)


def _write_inputs(folder: Path) -> dict[str, Path]:
    other: list[list[Any]] = [["code", "qty"], ["01234", 2], ["00501", None]]
    xlsx = make_xlsx(folder / "typed.xlsx", {"Data": [COLUMNS, *ROWS], "Other": other})
    lines = [",".join(COLUMNS)]
    for row in ROWS:
        cells = [
            "" if v is None else str(v).lower() if isinstance(v, bool) else str(v) for v in row
        ]
        lines.append(",".join(f'"{c}"' if "," in c else c for c in cells))
    csv = folder / "typed.csv"
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    lookup = folder / "lookup.csv"
    lookup.write_text("code,region\n01234,north\n98765,south\n01234,east\n", encoding="utf-8")
    return {"typed.xlsx": xlsx, "typed.csv": csv, "lookup.csv": lookup}


@pytest.fixture(scope="module")
def fuzzing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzing]:
    root = tmp_path_factory.mktemp("fuzz-operations")
    sources = _write_inputs(root)
    with (
        run_server(make_settings(root / "data", step_timeout_s=60.0)) as server,
        httpx.Client(base_url=server.url, timeout=120) as http,
    ):
        served = http.get(f"{API}/operations")
        assert served.status_code == 200, served.text
        catalogue = {op["name"]: op for op in served.json()["data"]}
        assert sorted(catalogue) == OPERATIONS
        created = http.post(f"{API}/chat/workflows", json={"title": "fuzz"})
        assert created.status_code == 201, created.text
        watch = HealthWatch(f"{server.url}{API}/health")
        fuzz = Fuzzing(
            server, http, created.json()["data"]["chat_id"], catalogue, {}, sources, watch
        )
        fuzz.originals = {name: fuzz.upload(name)["sha256"] for name in UPLOADS}
        warm = http.post(
            f"{fuzz.base}/execute",
            params={"wait": "true"},
            json={
                "input": "typed.xlsx",
                "steps": [{"operation": "excel/select-columns", "arguments": {"columns": ["id"]}}],
            },
        )
        assert warm.status_code == 200 and warm.json()["data"]["status"] == "completed", warm.text
        fuzz.rss_baseline_kb = _tree_rss_kb(os.getpid())
        thread = threading.Thread(target=watch.run, name="health-watch", daemon=True)
        thread.start()
        try:
            yield fuzz
        finally:
            watch.stop.set()
            thread.join(timeout=10)


def _check_answer(what: str, response: httpx.Response) -> Any:
    """No 5xx, no stack trace; a 4xx is a JSON error with a code. Returns the JSON body."""
    assert response.status_code < 500, f"{what}: {response.status_code} {response.text[:2000]}"
    assert "Traceback" not in response.text, f"{what}: {response.text[:2000]}"
    body = response.json()
    if response.status_code >= 400:
        error = body["error"]
        assert isinstance(error["code"], str) and error["code"], f"{what}: {response.text}"
    return body


# How each example's arguments are made. example: the catalogue's own; valid: inside every
# bound, existing names; accepted: valid ones that also pass the rules a schema cannot express
# (exactly one of two arguments, a value an op needs), so the step itself runs on more of them;
# edgy: the edge values injected everywhere.
MODES = ["example", "valid", "accepted", "accepted", "edgy", "edgy"]


@st.composite
def _accepted(draw: st.DrawFn, arguments: st.SearchStrategy[Any], operation: str) -> Any:
    """Arguments the operation's own model accepts (a plain filter gives up after 3 tries)."""
    op = REGISTRY.get(operation)
    assert op is not None
    for _ in range(50):
        candidate = draw(arguments)
        try:
            op.args_model.model_validate(candidate, context=Limits().as_context())
        except ValidationError:
            continue
        return candidate
    reject()


def _code(body: Any) -> str:
    """The error code of an answer or of the run it holds ('-' for none), for the statistics."""
    error = body.get("error") or (body.get("data") or {}).get("error") or {}
    return str(error.get("code", "-"))


FUZZ = settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # a shrink would replay live runs for minutes
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)


@pytest.mark.filterwarnings("ignore:Generating overly large repr")  # the 10 KB strings
@pytest.mark.parametrize("operation", OPERATIONS)
@FUZZ
@given(data=st.data())
def test_generated_arguments_never_break_the_server(
    fuzzing: Fuzzing, operation: str, data: st.DataObject
) -> None:
    entry = fuzzing.catalogue[operation]
    schema = entry["arguments_schema"]
    mode = data.draw(st.sampled_from(MODES), label="mode")
    if mode == "example":
        arguments: st.SearchStrategy[Any] = st.just(entry["example"])
    else:
        arguments = Schemas(schema.get("$defs", {}), edgy=mode == "edgy").strategy(schema)
    if mode == "accepted":
        arguments = _accepted(arguments, operation)
    steps = data.draw(st.lists(arguments, min_size=1, max_size=2), label="arguments")
    body = {
        "input": data.draw(st.sampled_from(["typed.xlsx", "typed.csv"]), label="input"),
        "steps": [{"operation": operation, "arguments": args} for args in steps],
    }
    fuzzing.health.reset()

    dry = fuzzing.http.post(f"{fuzzing.base}/execute", params={"dry_run": "true"}, json=body)
    event(f"dry run {dry.status_code} {_code(_check_answer('dry run', dry))}")
    real = fuzzing.http.post(
        f"{fuzzing.base}/execute", params={"wait": "true", "timeout": "90"}, json=body
    )
    answer = _check_answer("real run", real)
    event(f"real run {real.status_code} {_code(answer)}")
    if real.status_code == 200:
        run = answer["data"]
        note(f"run ended {run['status']}: {run['error']}")
        assert run["status"] in ("completed", "failed"), real.text[:2000]
        if run["status"] == "failed":
            assert run["error"]["code"] not in BAD_ENDINGS, real.text[:2000]
    else:
        assert real.status_code != 202, "the run did not end within 90 s"
        assert real.status_code in (400, 404, 409, 413, 422), real.text[:2000]

    assert fuzzing.health.failures == [], fuzzing.health.failures
    assert fuzzing.health.worst_s < HEALTH_BUDGET_S, f"/health took {fuzzing.health.worst_s:.2f} s"
    grown_mb = (_tree_rss_kb(os.getpid()) - fuzzing.rss_baseline_kb) / 1024
    assert grown_mb < RSS_GROWTH_MB, f"the server's process tree grew by {grown_mb:.0f} MB"
    fuzzing.restore_inputs()
