"""What a report section holds (tables, facts, figures) and how its numbers are written as table cells.

Kept apart from ``report``, which decides what each section computes: the
content model and the cell format change for other reasons than the analyses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sparring.analysis import figures


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class Section:
    key: str
    title: str
    method: str = ""
    sample: str = ""
    figures: list[figures.SavedFigure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    facts: list[tuple[str, str]] = field(default_factory=list)  # label, value
    unavailable: str = ""  # why the section is empty; "" when it has content
    error: str = ""
    clusters: list[dict[str, Any]] = field(default_factory=list)  # attack map only


def fmt(value: object, digits: int = 2) -> str:
    """Numbers for tables: fixed digits, thousands separators, an en dash for missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):,.{digits}f}"
    return str(value)


def ci(mean: object, low: object, high: object, digits: int = 2) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    return f"{fmt(mean, digits)} [{fmt(low, digits)}, {fmt(high, digits)}]"


def frame_table(frame: pd.DataFrame, columns: dict[str, str], caption: str = "", digits: int = 2,
                index: str | None = None) -> Table:
    """A DataFrame as a table of strings; ``columns`` maps frame columns to headers, in order."""
    present = {c: h for c, h in columns.items() if c in frame.columns}
    rows = []
    for position, label in enumerate(frame.index):  # column by column: a row Series would turn counts into floats
        cells = [fmt(label)] if index is not None else []
        rows.append(cells + [fmt(frame[c].iat[position], digits) for c in present])
    return Table(([index] if index is not None else []) + list(present.values()), rows, caption)
