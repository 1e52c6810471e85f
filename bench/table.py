"""The results table of `python -m bench`: readable in a 100-column terminal.

Long benchmark names and targets wrap inside their columns; the baselines, long
and repeated, are numbered ([1], [2], …) beside their values and spelled out in
a legend below. The last column says whether the row's target was met
(`met`, `MISSED`, or `-` for an informational row), and a closing line counts
the misses.
"""

from __future__ import annotations

import itertools
import textwrap
from collections.abc import Sequence

from bench.common import Result

NAME_WIDTH = 28
TARGET_WIDTH = 20
HEADER = ("benchmark", "value", "baseline", "ratio", "target", "result")


def _verdict(result: Result) -> str:
    met = result.met
    return "-" if met is None else ("met" if met else "MISSED")


def render(results: Sequence[Result]) -> str:
    baselines: dict[str, int] = {}
    for r in results:
        baselines.setdefault(r.baseline, len(baselines) + 1)
    rows: list[list[list[str]]] = []  # row → column → wrapped lines
    for r in results:
        rows.append(
            [
                textwrap.wrap(r.name, NAME_WIDTH) or [""],
                [f"{r.value:,.2f} {r.unit}"],
                [f"{r.baseline_value:,.2f} [{baselines[r.baseline]}]"],
                [f"{r.ratio:.2f}"],
                textwrap.wrap(r.target, TARGET_WIDTH) or [""],
                [_verdict(r)],
            ]
        )
    widths = [
        max(len(HEADER[c]), *(len(line) for row in rows for line in row[c]))
        for c in range(len(HEADER))
    ]
    out = ["  ".join(h.ljust(w) for h, w in zip(HEADER, widths, strict=True)).rstrip()]
    out.append("  ".join("-" * w for w in widths))
    for row in rows:
        for parts in itertools.zip_longest(*row, fillvalue=""):
            out.append("  ".join(p.ljust(w) for p, w in zip(parts, widths, strict=True)).rstrip())
    out.append("")
    out.append("baselines:")
    for name, number in baselines.items():
        out.append(
            textwrap.fill(name, 96, initial_indent=f"  [{number}] ", subsequent_indent="      ")
        )
    missed = [r.name for r in results if r.met is False]
    checked = sum(r.met is not None for r in results)
    out.append("")
    if missed:
        out.append(f"{len(missed)} of {checked} targets MISSED:")
        out.extend(f"  - {name}" for name in missed)
    else:
        out.append(f"all {checked} targets met")
    return "\n".join(out)
