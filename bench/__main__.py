"""Runs every `bench/bench_*.py`, prints one table and writes bench/results.json.

python -m bench [--quick] [--only NAME ...]

The table (bench/table.py) says for each row whether its target was met; the
exit code is 1 when one was missed (in a full run: --quick sizes are too small
for the targets to bind).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

from bench.common import Result, bench_context
from bench.table import render

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="small sizes, as a smoke run")
    parser.add_argument("--only", nargs="*", default=[], help="module names, e.g. ingest broker")
    args = parser.parse_args(argv)
    modules = sorted(p.stem for p in HERE.glob("bench_*.py"))
    if args.only:
        modules = [m for m in modules if m.removeprefix("bench_") in args.only]
    results: list[Result] = []
    with bench_context(args.quick) as ctx:
        for name in modules:
            print(f"running {name} …", file=sys.stderr, flush=True)
            module = importlib.import_module(f"bench.{name}")
            results.extend(module.run(ctx))
    print(render(results))
    (HERE / "results.json").write_text(json.dumps([r.as_json() for r in results], indent=2) + "\n")
    print(f"\nwrote {HERE / 'results.json'}", file=sys.stderr)
    if args.quick:
        print("(--quick: small sizes, the targets do not bind)", file=sys.stderr)
    return exit_code(results, args.quick)


def exit_code(results: list[Result], quick: bool) -> int:
    """1 when a full run missed a target."""
    return 1 if not quick and any(r.met is False for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
