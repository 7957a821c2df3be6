"""How the benches print their results: one markdown table, a column per measured size, side by side."""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable, Sequence
from typing import Any


def markdown_table(rows: Sequence[tuple[str, Callable[[Any], str]]], results: Sequence[Any]) -> list[str]:
    """The table's lines: the first row names the columns, each further row is (measure, result -> cell)."""
    lines = ["| measure | " + " | ".join(rows[0][1](r) for r in results) + " |", "|---|" + "---|" * len(results)]
    lines += [f"| {name} | " + " | ".join(cell(r) for r in results) + " |" for name, cell in rows[1:]]
    return lines


def sized_arguments(doc: str, sizes: dict[str, Any], default_sizes: str, runs: int, runs_help: str,
                    extra: Callable[[argparse.ArgumentParser], None] | None = None) -> tuple[Any, list[str]]:
    """A bench's command line: `--sizes` (checked against `sizes`, in the order given), `--runs`, and whatever
    `extra` adds; returns the arguments and the chosen size labels."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--sizes", default=default_sizes, help="comma-separated: " + ", ".join(sizes))
    parser.add_argument("--runs", type=int, default=runs, help=runs_help)
    if extra:
        extra(parser)
    args = parser.parse_args()
    labels = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in labels if s not in sizes]
    if unknown:
        parser.error(f"unknown sizes: {', '.join(unknown)}")
    return args, labels


def ms(values: Sequence[float], q: float = 0.5) -> str:
    """A cell for durations in seconds: their median (or the `q` quantile, e.g. 0.95), in ms below 10 s."""
    if not values:
        return "-"
    ordered = sorted(values)
    value = statistics.median(ordered) if q == 0.5 else ordered[min(len(ordered) - 1, int(len(ordered) * q))]
    return f"{value * 1000:,.0f} ms" if value < 10 else f"{value:,.1f} s"


def median_p95(values: Sequence[float]) -> str:
    """A cell "median / p95" for durations in seconds ("-" when nothing was measured)."""
    return f"{ms(values)} / {ms(values, 0.95)}" if values else "-"
