"""excel/sql reads only the chat's tables: a corpus of escape attempts against a live server.

One server with an API key file holding two keys: a victim (key A) whose chat holds a csv with
distinctive content, a distinctive title and a distinctive message, and an attacker (key B)
whose chat holds two small csv files. Every escape attempt is made by the attacker, who is
assumed to know every path (the victim's stored file, the key file, the data dir, the database):
the worst case. Each attempt runs as a dry run (422, ``sql_forbidden`` or ``invalid_sql``) and
as a real run (``failed`` with one of those codes and a ``workflow_failed`` event). Nothing the
attacker can read afterwards (answers, events, messages, file list, the chat's storage folder)
holds host content: the victim's values, either key, /etc/passwd lines, the process
environment, the database's rows, or (for attempts that do not name them) the victim's storage
names. Positive controls prove the same server still answers legitimate queries exactly.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import LiveServer, make_settings, run_server

API = "/api/v1"
REFUSED = {"sql_forbidden", "invalid_sql"}

# Placeholders the corpus uses; the fixture fills them in with the real paths.
VICTIM = "@VICTIM@"  # absolute path of the victim's stored csv
REL_VICTIM = "@REL_VICTIM@"  # the same, relative to the server process's working directory
VICTIM_CHAT = "@VICTIM_CHAT@"
KEYS = "@KEYS@"  # the API key file
DATA = "@DATA@"  # the data dir
DB = "@DB@"  # the sqlite database
ATTACKER_DIR = "@ATTACKER_DIR@"  # the attacker chat's storage folder
NAMES_VICTIM = (VICTIM, REL_VICTIM, VICTIM_CHAT)

CORPUS: dict[str, str] = {
    # plain table functions on host files
    "passwd": "SELECT * FROM read_csv('/etc/passwd')",
    "passwd_as_colons": "SELECT * FROM read_csv('/etc/passwd', separator => ':', "
    "has_header => false)",
    "key_file": f"SELECT * FROM read_csv('{KEYS}', has_header => false)",
    "victim_csv": f"SELECT * FROM read_csv('{VICTIM}')",
    "victim_parquet": f"SELECT * FROM read_parquet('{VICTIM}')",
    "victim_ipc": f"SELECT * FROM read_ipc('{VICTIM}')",
    "victim_json": f"SELECT * FROM read_json('{VICTIM}')",
    "victim_ndjson": f"SELECT * FROM read_ndjson('{VICTIM}')",
    "scan_csv_victim": f"SELECT * FROM scan_csv('{VICTIM}')",
    "scan_parquet_passwd": "SELECT * FROM scan_parquet('/etc/passwd')",
    "scan_ndjson_key_file": f"SELECT * FROM scan_ndjson('{KEYS}')",
    "database_file": f"SELECT * FROM read_csv('{DB}', has_header => false)",
    # globs and path spellings
    "relative_glob": "SELECT * FROM read_csv('files/**/*.csv')",
    "relative_traversal": f"SELECT * FROM read_csv('{REL_VICTIM}')",
    "absolute_glob": f"SELECT * FROM read_csv('{DATA}/files/*/*')",
    "absolute_recursive_glob": f"SELECT * FROM read_csv('{DATA}/**/*.csv')",
    "file_url": f"SELECT * FROM read_csv('file://{VICTIM}')",
    "path_list": f"SELECT * FROM read_csv(['{VICTIM}'])",
    "escape_string": f"SELECT * FROM read_csv(E'{VICTIM}')",
    "quoted_identifier_path": f'SELECT * FROM "{VICTIM}"',
    # /proc
    "proc_self_environ": "SELECT * FROM read_csv('/proc/self/environ', has_header => false)",
    "proc_self_cmdline": "SELECT * FROM read_csv('/proc/self/cmdline', has_header => false)",
    "proc_1_environ": "SELECT * FROM read_csv('/proc/1/environ', has_header => false)",
    "proc_1_status": "SELECT * FROM read_csv('/proc/1/status', separator => ':', "
    "has_header => false)",
    "proc_self_root": f"SELECT * FROM read_csv('/proc/self/root{VICTIM}')",
    "proc_self_cwd": f"SELECT * FROM read_csv('/proc/self/cwd/{REL_VICTIM}')",
    # spellings of the function name
    "mixed_case": f"SeLeCt * FrOm ReAd_CsV('{VICTIM}')",
    "quoted_name": f"SELECT * FROM \"read_csv\"('{VICTIM}')",
    "backtick_name": f"SELECT * FROM `read_csv`('{VICTIM}')",
    # the tricks a text filter and polars' parser disagree on
    "dollar_quoted_path": "SELECT * FROM read_csv($$/etc/passwd$$)",
    "dollar_quoted_apostrophe": f"SELECT $$'$$ AS a, * FROM read_csv/**/('{VICTIM}') --'",
    "dollar_quoted_comment": f"SELECT $$/*$$ AS a, * FROM read_csv/**/('{VICTIM}') -- */",
    "nested_comment": f"SELECT * FROM /* /* */ input */ read_csv('{VICTIM}')",
    "comment_before_parenthesis": "SELECT * FROM read_csv/**/('/etc/passwd')",
    "line_comment_before_parenthesis": f"SELECT * FROM read_csv -- x\n('{VICTIM}')",
    # query shapes
    "cte": f"WITH x AS (SELECT * FROM read_csv('{VICTIM}')) SELECT * FROM x",
    "subquery_in_from": f"SELECT * FROM (SELECT * FROM read_csv('{VICTIM}')) AS s",
    "subquery_in_where": f"SELECT * FROM input WHERE id IN (SELECT account FROM "
    f"read_csv('{VICTIM}'))",
    "scalar_subquery": f"SELECT id, (SELECT MAX(note) FROM read_csv('{VICTIM}')) AS n FROM input",
    "join_with_input": f"SELECT * FROM input JOIN read_csv('{VICTIM}') v ON input.id = v.account",
    "union_with_input": f"SELECT name FROM input UNION ALL SELECT note FROM read_csv('{VICTIM}')",
    "aliased_as_input": f"SELECT * FROM read_csv('{VICTIM}') AS input",
    "multiple_statements": f"SELECT * FROM input; SELECT * FROM read_csv('{VICTIM}')",
    # other statements
    "create_table_as": f"CREATE TABLE t AS SELECT * FROM read_csv('{VICTIM}')",
    "copy_to_file": f"COPY (SELECT * FROM read_csv('{VICTIM}')) TO '{ATTACKER_DIR}/leak.csv'",
    "attach_database": f"ATTACH '{DB}' AS stolen",
    "explain": f"EXPLAIN SELECT * FROM read_csv('{VICTIM}')",
    # another chat's file by its table name
    "other_chats_table": "SELECT * FROM ledger",
}


@dataclass
class Scene:
    """The live server, both keys' clients and chats, and what must never leak."""

    server: LiveServer
    victim: httpx.Client
    attacker: httpx.Client
    victim_chat: str
    attacker_chat: str
    paths: dict[str, str]
    markers: list[str] = field(default_factory=list)  # never readable by the attacker
    name_markers: list[str] = field(default_factory=list)  # unless the query names them

    def query(self, template: str) -> str:
        for placeholder, value in self.paths.items():
            template = template.replace(placeholder, value)
        return template

    def forbidden(self, template: str) -> list[str]:
        names = [] if any(p in template for p in NAMES_VICTIM) else self.name_markers
        return self.markers + names

    @property
    def attacker_base(self) -> str:
        return f"{API}/chat/workflows/{self.attacker_chat}"


def _host_markers() -> list[str]:
    """Pieces of this process's environment and command line (the server runs in it)."""
    markers = ["root:x:0:0", "/usr/sbin/nologin", "VmRSS", "PPid"]
    environ = Path("/proc/self/environ").read_bytes().decode(errors="replace").split("\0")
    markers += [entry for entry in environ if len(entry) >= 20 and "=" in entry][:8]
    argv = Path("/proc/self/cmdline").read_bytes().decode(errors="replace").split("\0")
    if len(argv) >= 3:
        markers.append("\0".join(argv[:2]))
    return markers


def _upload(client: httpx.Client, chat_id: str, name: str, content: str) -> None:
    response = client.post(
        f"{API}/chat/workflows/{chat_id}/upload", files={"file": (name, content.encode())}
    )
    assert response.status_code == 201, response.text


def _chat(client: httpx.Client, title: str) -> str:
    response = client.post(f"{API}/chat/workflows", json={"title": title})
    assert response.status_code == 201, response.text
    return str(response.json()["data"]["chat_id"])


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    root = tmp_path_factory.mktemp("sql-confinement")
    key_a, key_b = f"victim-{secrets.token_hex(16)}", f"attacker-{secrets.token_hex(16)}"
    key_file = root / "keys.txt"
    key_file.write_text(f"# chatflow keys\n{key_a}\n{key_b}\n")
    settings = make_settings(root / "data", api_keys_file=key_file)
    secret = secrets.token_hex(12)
    with (
        run_server(settings) as server,
        httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {key_a}"}, timeout=120
        ) as a,
        httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {key_b}"}, timeout=120
        ) as b,
    ):
        victim_chat = _chat(a, f"title-{secret}")
        _upload(
            a,
            victim_chat,
            "ledger.csv",
            f"account,note,vault_{secret}\n1,marker-{secret},x\n2,marker-{secret}-b,y\n",
        )
        said = a.post(
            f"{API}/chat/workflows/{victim_chat}/messages", json={"text": f"pin {secret}"}
        )
        assert said.status_code == 201, said.text
        attacker_chat = _chat(b, "attacker")
        _upload(b, attacker_chat, "orders.csv", "id,name,amount\n1,ann,2.5\n2,bob,-1\n3,cy,10\n")
        _upload(b, attacker_chat, "prices.csv", "name,price\nann,3\nbob,4\n")
        data_dir = settings.resolved_data_dir.resolve()
        (stored,) = (settings.files_dir / victim_chat).glob("*.csv")
        paths = {
            VICTIM: str(stored.resolve()),
            REL_VICTIM: os.path.relpath(stored.resolve(), os.getcwd()),
            VICTIM_CHAT: victim_chat,
            KEYS: str(key_file.resolve()),
            DATA: str(data_dir),
            DB: str(data_dir / "chatflow.db"),
            ATTACKER_DIR: str((settings.files_dir / attacker_chat).resolve()),
        }
        yield Scene(
            server,
            a,
            b,
            victim_chat,
            attacker_chat,
            paths,
            markers=[secret, key_a, key_b, *_host_markers()],
            name_markers=[victim_chat, stored.name, stored.stem],
        )


def _strings(value: Any) -> Iterator[str]:
    """Every string in a JSON value, keys included, unescaped."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _assert_clean(what: str, response: httpx.Response, markers: list[str]) -> None:
    assert response.status_code < 500, (what, response.status_code, response.text)
    text = response.text + "\n" + "\n".join(_strings(response.json()))
    leaked = [marker for marker in markers if marker in text]
    assert leaked == [], f"{what} shows host content {leaked!r}: {response.text[:2000]}"


def _stored_names(scene: Scene, chat_id: str) -> list[str]:
    return sorted(p.name for p in (scene.server.settings.files_dir / chat_id).iterdir())


def _files(client: httpx.Client, chat_id: str) -> list[tuple[str, int]]:
    response = client.get(f"{API}/chat/workflows/{chat_id}/files")
    assert response.status_code == 200, response.text
    return [(f["filename"], f["version"]) for f in response.json()["data"]]


def _attacker_state(scene: Scene) -> tuple[list[tuple[str, int]], list[str]]:
    """The attacker chat's file list and the names in its storage folder."""
    return _files(scene.attacker, scene.attacker_chat), _stored_names(scene, scene.attacker_chat)


def _step(query: str, **arguments: Any) -> dict[str, Any]:
    return {
        "input": "orders.csv",
        "steps": [{"operation": "excel/sql", "arguments": {"query": query, **arguments}}],
    }


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_a_dry_run_refuses_the_escape(scene: Scene, case: str) -> None:
    before = _attacker_state(scene)
    response = scene.attacker.post(
        f"{scene.attacker_base}/execute",
        params={"dry_run": "true"},
        json=_step(scene.query(CORPUS[case])),
    )
    _assert_clean("the dry run's answer", response, scene.forbidden(CORPUS[case]))
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] in REFUSED, response.text
    after = _attacker_state(scene)
    assert after == before


def _latest(client: httpx.Client, url: str, key: str) -> int:
    """The newest event seq or message id so far (what came later belongs to the next run)."""
    response = client.get(url, params={"limit": 1000})
    assert response.status_code == 200, response.text
    return max((item[key] for item in response.json()["data"]), default=0)


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_a_real_run_fails_and_writes_nothing(scene: Scene, case: str) -> None:
    markers = scene.forbidden(CORPUS[case])
    base = scene.attacker_base
    before = _attacker_state(scene)
    victim_before = _files(scene.victim, scene.victim_chat)
    seq = _latest(scene.attacker, f"{base}/events", "seq")
    message_id = _latest(scene.attacker, f"{base}/messages", "id")
    response = scene.attacker.post(
        f"{base}/execute",
        params={"wait": "true", "timeout": "120"},
        json=_step(scene.query(CORPUS[case]), output="leak.csv"),
    )
    _assert_clean("the run", response, markers)
    assert response.status_code == 200, response.text
    run = response.json()["data"]
    assert (run["status"], run["outputs"]) == ("failed", []), response.text
    assert run["error"]["code"] in REFUSED, response.text

    events = scene.attacker.get(f"{base}/events", params={"since": seq})
    _assert_clean("the run's events", events, markers)
    ending = ("workflow_completed", "workflow_failed", "workflow_cancelled")
    ends = [e for e in events.json()["data"] if e["type"] in ending]
    assert [(e["type"], e["run_id"], e["error"]["code"]) for e in ends] == [
        ("workflow_failed", run["run_id"], run["error"]["code"])
    ]
    messages = scene.attacker.get(f"{base}/messages", params={"after": message_id})
    _assert_clean("the run's messages", messages, markers)
    _assert_clean("the stored run", scene.attacker.get(f"{base}/runs/{run['run_id']}"), markers)
    after = _attacker_state(scene)
    assert after == before
    assert _files(scene.victim, scene.victim_chat) == victim_before
    assert not Path(scene.paths[ATTACKER_DIR], "leak.csv").exists()


def test_a_read_that_polars_sees_as_a_comment_reads_nothing(scene: Scene) -> None:
    # Polars nests block comments, so the read below is commented out: the query either runs
    # over input alone or is refused; it never shows the victim's rows.
    query = scene.query(
        f"SELECT id, name FROM input /* /* */ UNION ALL SELECT account, note FROM "
        f"read_csv('{VICTIM}') */ ORDER BY id"
    )
    response = scene.attacker.post(
        f"{scene.attacker_base}/execute", params={"dry_run": "true"}, json=_step(query)
    )
    _assert_clean("the dry run's answer", response, scene.markers)
    if response.status_code == 422:
        assert response.json()["error"]["code"] in REFUSED
    else:
        assert response.status_code == 200, response.text
        (step,) = response.json()["data"]["steps"]
        assert step["rows"] == [[1, "ann"], [2, "bob"], [3, "cy"]]


def test_a_query_over_input_gives_exact_rows_and_types(scene: Scene) -> None:
    query = "SELECT id, name, amount * 2 AS doubled FROM input WHERE amount > 0 ORDER BY id"
    response = scene.attacker.post(
        f"{scene.attacker_base}/execute", params={"dry_run": "true"}, json=_step(query)
    )
    assert response.status_code == 200, response.text
    (step,) = response.json()["data"]["steps"]
    assert step["columns"] == ["id", "name", "doubled"]
    assert step["types"] == ["integer", "text", "float"]
    assert step["rows"] == [[1, "ann", 5.0], [3, "cy", 20.0]]
    assert [type(v) for v in step["rows"][0]] == [int, str, float]


def test_a_join_with_the_chats_own_file_runs_and_writes_its_output(scene: Scene) -> None:
    query = (
        "SELECT o.id, o.name, o.amount * p.price AS total FROM input o "
        "JOIN prices p ON o.name = p.name ORDER BY o.id"
    )
    response = scene.attacker.post(
        f"{scene.attacker_base}/execute",
        params={"wait": "true", "timeout": "120"},
        json=_step(query, output="totals.csv"),
    )
    assert response.status_code == 200, response.text
    run = response.json()["data"]
    assert run["status"] == "completed", response.text
    assert [o["filename"] for o in run["outputs"]] == ["totals.csv"]
    download = scene.attacker.get(f"{scene.attacker_base}/files/totals.csv")
    assert download.status_code == 200
    assert download.text.splitlines() == ["id,name,total", "1,ann,7.5", "2,bob,-4"]
    # The victim's tables are not the attacker's: the same query shape over them is refused.
    refused = scene.attacker.post(
        f"{scene.attacker_base}/execute",
        params={"dry_run": "true"},
        json=_step("SELECT o.id FROM input o JOIN ledger l ON o.id = l.account"),
    )
    _assert_clean("the dry run's answer", refused, scene.markers)
    assert (refused.status_code, refused.json()["error"]["code"]) == (422, "invalid_sql")
