"""Runs every `bench/bench_*.py`, prints one table and writes bench/results.json.

python -m bench [--quick] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

from bench.common import Result, bench_context

HERE = Path(__file__).resolve().parent


def _print_table(results: list[Result]) -> None:
    header = ("benchmark", "value", "baseline", "baseline value", "ratio", "target")
    rows = [
        (
            r.name,
            f"{r.value:,.2f} {r.unit}",
            r.baseline,
            f"{r.baseline_value:,.2f} {r.unit}",
            f"{r.ratio:.2f}",
            r.target,
        )
        for r in results
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    for i, row in enumerate([header, *rows]):
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
        if i == 0:
            print("  ".join("-" * w for w in widths))


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
    _print_table(results)
    (HERE / "results.json").write_text(json.dumps([r.as_json() for r in results], indent=2) + "\n")
    print(f"\nwrote {HERE / 'results.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
