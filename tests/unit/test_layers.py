"""The packages form layers that point one way (README, "Architecture"):

    hl_core < storage < jobs < graph < hl_analytics

and `hlsim` (the simulated exchange) stands beside them, on `hl_core` only. A
module may import its own package and the packages below it, never one above:
this test parses every module of the project (with `ast`, so imports inside
functions and `importlib.import_module("…")` strings count too) and fails on an
upward import. `bench` and `tests` sit above everything.

The one string the test does not see is Dramatiq's entry module,
`jobs.worker_entry:broker`, which `hl-analytics worker` hands to Dramatiq's
runner to import in each worker process; it is inside `jobs`, so even that
points down.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# What each package may import, besides itself (and the standard library and
# third-party packages).
ALLOWED: dict[str, frozenset[str]] = {
    "hl_core": frozenset(),
    "storage": frozenset({"hl_core"}),
    "jobs": frozenset({"hl_core", "storage"}),
    "graph": frozenset({"hl_core", "storage", "jobs"}),
    "hl_analytics": frozenset({"hl_core", "storage", "jobs", "graph", "hlsim"}),
    "hlsim": frozenset({"hl_core"}),
}
PROJECT = frozenset(ALLOWED)
ABOVE_ALL = ("bench", "tests")
# An import whose module is computed at run time: the check cannot see where it
# points, so a project package may not have one.
UNCHECKABLE = "<a module name computed at run time>"


def imported_modules(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, module) of every import in `tree`, at any depth, and of every
    `importlib.import_module("literal")` / `import_module("literal")` call."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                yield node.lineno, node.module
        elif isinstance(node, ast.Call):
            func = node.func
            name = (
                func.attr
                if isinstance(func, ast.Attribute)
                else func.id
                if isinstance(func, ast.Name)
                else ""
            )
            if name in ("import_module", "__import__") and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    yield node.lineno, first.value
                elif isinstance(first, ast.JoinedStr) and first.values:
                    head = first.values[0]
                    if isinstance(head, ast.Constant) and isinstance(head.value, str):
                        yield node.lineno, head.value
                    else:
                        yield node.lineno, UNCHECKABLE
                else:
                    yield node.lineno, UNCHECKABLE


def upward_imports(package: str, source: str, filename: str) -> list[str]:
    allowed = ALLOWED[package] | {package}
    found = []
    for line, module in imported_modules(ast.parse(source, filename)):
        top = module.split(".")[0]
        if module == UNCHECKABLE or top in ABOVE_ALL or (top in PROJECT and top not in allowed):
            found.append(f"{filename}:{line}: {package} imports {module}")
    return found


def test_no_package_imports_a_package_above_it() -> None:
    violations: list[str] = []
    checked = 0
    for package in sorted(ALLOWED):
        for path in sorted((ROOT / package).rglob("*.py")):
            checked += 1
            violations += upward_imports(
                package, path.read_text(encoding="utf-8"), str(path.relative_to(ROOT))
            )
    assert checked > 50, "the project's modules were not found"
    assert not violations, "upward imports:\n" + "\n".join(violations)


def test_the_check_sees_function_local_imports_and_import_module_strings() -> None:
    source = (
        "import importlib\n"
        "from storage import orgs\n"
        "def f():\n"
        "    from graph.app import create_app\n"
        "    return importlib.import_module('hl_analytics.cli')\n"
        "def g(name):\n"
        "    return importlib.import_module(f'bench.{name}')\n"
        "def h(name):\n"
        "    return importlib.import_module(name)\n"
    )
    assert upward_imports("jobs", source, "jobs/x.py") == [
        "jobs/x.py:4: jobs imports graph.app",
        "jobs/x.py:5: jobs imports hl_analytics.cli",
        "jobs/x.py:7: jobs imports bench.",
        f"jobs/x.py:9: jobs imports {UNCHECKABLE}",
    ]
    assert upward_imports("hlsim", "from storage.db import connect\n", "hlsim/x.py") == [
        "hlsim/x.py:1: hlsim imports storage.db"
    ]
    assert upward_imports("hl_analytics", "import hlsim.server\n", "hl_analytics/x.py") == []
