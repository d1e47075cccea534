"""Markdown tables, as the reports (evaluation, sweeps, structure swaps) and the end of a training run print them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """``header`` and one line per row of cells (already formatted) as a Markdown table, without a final newline."""
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)
