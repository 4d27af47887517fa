"""A streamed listing for people: columns padded to a minimum width, never cut."""

from __future__ import annotations

from collections.abc import Iterable

import click


def _lines(headers: list[str], rows: Iterable[list[str]], widths: list[int]) -> None:
    """A streamed listing with minimum column widths: rich tables need every row first.

    Cells are padded, never cut: an auditor must not see a shortened id or protocol.
    """

    def fmt(cells: list[str]) -> str:
        parts = []
        for cell, width in zip(cells, widths, strict=True):
            parts.append(cell.ljust(width))
        return " ".join(parts).rstrip()

    click.echo(fmt(headers))
    click.echo(fmt(["-" * (w or 8) for w in widths]))
    count = 0
    for row in rows:
        click.echo(fmt(row))
        count += 1
    click.echo(f"({count} rows)")
