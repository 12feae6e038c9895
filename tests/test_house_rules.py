"""The house rules the code is held to: short modules and functions, a docstring on every
module, no two public functions of one name outside the parallel repository modules."""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _modules(*folders: str) -> Iterator[tuple[Path, ast.Module]]:
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            yield path, ast.parse(path.read_text(encoding="utf-8"))


def test_no_module_is_over_400_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): lines
        for path, _ in _modules("src", "benchmarks")
        if (lines := path.read_text(encoding="utf-8").count("\n")) > MAX_MODULE_LINES
    }
    assert long == {}


def test_no_function_is_over_60_lines() -> None:
    long = {
        f"{path.relative_to(ROOT)}:{node.lineno} {node.name}": size
        for path, tree in _modules("src", "benchmarks")
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and (size := (node.end_lineno or node.lineno) - node.lineno + 1) > MAX_FUNCTION_LINES
    }
    assert long == {}


def test_every_module_says_what_it_owns() -> None:
    silent = [
        str(path.relative_to(ROOT))
        for path, tree in _modules("src")
        if path.name != "__init__.py" and not ast.get_docstring(tree)
    ]
    assert silent == []


def test_no_two_public_functions_share_a_name() -> None:
    """Repositories and services share their verbs (get, insert, delete) by design: each is
    used qualified, ``chats_repo.get``, ``files.delete``.  A route handler may carry its
    service's name (FastAPI makes it the operation id).  Anything else is a newcomer's trap."""
    places: dict[str, list[str]] = defaultdict(list)
    for path, tree in _modules("src/chatflow"):
        layer = path.relative_to(ROOT / "src/chatflow").parts[0]
        if layer in ("repositories", "services", "api"):
            continue
        for node in tree.body:
            if isinstance(
                node, ast.FunctionDef | ast.AsyncFunctionDef
            ) and not node.name.startswith("_"):
                places[node.name].append(str(path.relative_to(ROOT)))
    assert {name: where for name, where in places.items() if len(where) > 1} == {}
