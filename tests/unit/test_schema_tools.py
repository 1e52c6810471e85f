"""The tools frontends run on graph/schema.graphql: an ecosystem schema linter
(descriptions on every type, field, argument and enum value; Relay's connection,
argument and PageInfo conventions), and GraphQL Code Generator on the schema and the
README's example operations, whose TypeScript must compile with `tsc --strict`.

`make` installs the tools into the virtualenv (the Makefile's `schema-tools`); without
node and npm these tests are skipped, saying so."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "graph" / "schema.graphql"
README = ROOT / "README.md"
TOOLS = Path(sys.prefix) / "schema-tools"
BIN = TOOLS / "node_modules" / ".bin"
LINT_RULES = (
    "types-have-descriptions",
    "fields-have-descriptions",
    "arguments-have-descriptions",
    "enum-values-have-descriptions",
    "input-object-values-have-descriptions",
    "relay-connection-types-spec",
    "relay-connection-arguments-spec",
    "relay-page-info-spec",
    "defined-types-are-used",
    "deprecations-have-a-reason",
)
# The operations the README shows, at least these (the test reads them from it).
README_OPERATIONS = {"Dashboard", "CoinBreakdown", "TrackedWallets", "LabelWallet", "Fills"}


def tool(name: str) -> Path:
    if shutil.which("node") is None:
        pytest.skip("node is not installed: the schema tools need node and npm")
    path = BIN / name
    if not path.exists():
        pytest.skip(f"{name} is not installed: run `make schema-tools` (needs npm)")
    return path


def run(args: list[str | Path], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_the_schema_passes_the_linter() -> None:
    linter = tool("graphql-schema-linter")
    done = run([linter, "--rules", ",".join(LINT_RULES), SCHEMA], ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def readme_operations() -> dict[str, str]:
    """Every ```graphql block of the README, by operation name."""
    blocks = re.findall(r"```graphql\n(.*?)```", README.read_text(), flags=re.S)
    found = {}
    for block in blocks:
        match = re.match(r"\s*(?:query|mutation)\s+(\w+)", block)
        assert match, f"a README example operation has no name: {block[:60]!r}"
        found[match.group(1)] = block
    return found


def test_codegen_of_the_readme_operations_compiles_strict(tmp_path: Path) -> None:
    codegen, tsc = tool("graphql-codegen"), tool("tsc")
    operations = readme_operations()
    assert set(operations) >= README_OPERATIONS
    documents = tmp_path / "operations.graphql"
    documents.write_text("\n".join(operations.values()))
    out = tmp_path / "generated"
    config = {
        "schema": str(SCHEMA),
        "documents": [str(documents)],
        "config": {
            "scalars": {"Date": "string", "DateTime": "string", "Decimal": "string"},
            "strictScalars": True,
        },
        "generates": {
            str(out / "schema.ts"): {"plugins": ["typescript"]},
            str(out / "operations.ts"): {"plugins": ["typescript-operations"]},
        },
    }
    (tmp_path / "codegen.json").write_text(json.dumps(config))
    # Run from the tools' folder: codegen finds its plugins in the working directory.
    done = run([codegen, "--config", tmp_path / "codegen.json"], TOOLS)
    assert done.returncode == 0, done.stdout + done.stderr
    generated = (out / "operations.ts").read_text()
    for name in operations:
        kind = "Mutation" if operations[name].lstrip().startswith("mutation") else "Query"
        assert f"export type {name}{kind} =" in generated, name
    # A frontend's use of the generated types: USD amounts are strings, ids too.
    (tmp_path / "use.ts").write_text(
        'import type { FillsQuery, DashboardQuery } from "./generated/operations";\n'
        "export const tids = (q: FillsQuery): string[] =>\n"
        "  q.wallet?.fills.edges.map((e) => e.node.tid) ?? [];\n"
        "export const volumes = (q: DashboardQuery): string[] =>\n"
        "  q.globalMetrics.map((d) => d.totalVolumeUsd);\n"
    )
    done = run(
        [
            tsc,
            "--strict",
            "--noEmit",
            "--target",
            "es2020",
            "--moduleResolution",
            "node",
            out / "schema.ts",
            out / "operations.ts",
            tmp_path / "use.ts",
        ],
        tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
