"""CSV tables: columns typed, categories one-hot, missing values and standardisation.

``read_csv`` reads a header and rows as text. ``TableSchema.fit`` looks at the training rows:
a column whose values are all numbers is numeric (standardised with the training rows' mean
and standard deviation; a missing value is an error naming its row and column unless
``fill_missing`` is ``mean`` or ``zero``), a column of at most ``MAX_CATEGORIES`` distinct texts
is a category (one 0/1 column per value), any other text column is an error naming it. The
schema is plain JSON: checkpoints keep it, so ``evaluate`` and ``predict`` apply exactly the
transform training used, to the same file or to a new one with the same feature columns.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trainkit.errors import DataError

MISSING = {"", "na", "n/a", "nan", "null", "none", "?"}
#: A text column with more distinct values than this is no category (a name, a free text).
MAX_CATEGORIES = 32


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    """The header and the rows of ``path``, every row as long as the header."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            rows = [row for row in reader if row]
    except FileNotFoundError:
        raise DataError(f"{path}: file not found (from --data-file)") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path}: not a readable CSV file ({e})") from None
    if not header:
        raise DataError(f"{path}: empty; a CSV table starts with a header row of column names")
    header = [name.strip() for name in header]
    for number, row in enumerate(rows, 2):
        if len(row) != len(header):
            raise DataError(f"{path}: row {number} has {len(row)} values, the header "
                            f"{len(header)} columns")
    if not rows:
        raise DataError(f"{path}: no rows under the header")
    return header, rows


def is_missing(value: str) -> bool:
    return value.strip().lower() in MISSING


def as_number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


@dataclass
class TableSchema:
    """How a table's feature columns become the model's inputs (JSON-ready)."""

    target: str
    columns: list[dict[str, Any]] = field(default_factory=list)
    fill_missing: str = "none"

    @classmethod
    def fit(cls, header: list[str], rows: list[list[str]], target: str, fill_missing: str,
            source: str, row_numbers: list[int]) -> TableSchema:
        if fill_missing not in ("none", "mean", "zero"):
            raise DataError(f"{source}: fill_missing must be none, mean or zero, got "
                            f"{fill_missing!r}")
        schema = cls(target, fill_missing=fill_missing)
        for index, name in enumerate(header):
            if name == target:
                continue
            values = [row[index] for row in rows]
            present = [v for v in values if not is_missing(v)]
            numbers = [as_number(v) for v in present]
            if all(n is not None for n in numbers):
                schema.columns.append(numeric_column(name, numbers, values, fill_missing,
                                                     source, row_numbers))
                continue
            categories = sorted({v.strip() for v in present})
            if len(categories) > MAX_CATEGORIES:
                text = next(v for v, n in zip(present, numbers) if n is None)
                raise DataError(f"{source}: column {name!r} holds text ({text!r}, and "
                                f"{len(categories)} distinct values in all): not a number nor a "
                                f"category of at most {MAX_CATEGORIES}; drop or encode it")
            schema.columns.append({"name": name, "kind": "category", "categories": categories})
        if not schema.columns:
            raise DataError(f"{source}: no feature column besides the target {target!r}")
        return schema

    def transform(self, header: list[str], rows: list[list[str]], source: str,
                  row_numbers: list[int]) -> np.ndarray:
        """The rows as float32 feature rows, as training saw them."""
        where = {name: i for i, name in enumerate(header)}
        missing = [c["name"] for c in self.columns if c["name"] not in where]
        if missing:
            raise DataError(f"{source}: no column {missing[0]!r}; the model was trained on "
                            f"columns {', '.join(c['name'] for c in self.columns)}")
        parts = []
        for column in self.columns:
            values = [row[where[column["name"]]] for row in rows]
            if column["kind"] == "numeric":
                parts.append(self.numbers(column, values, source, row_numbers)[:, None])
            else:
                parts.append(one_hot(column, values, self.fill_missing, source, row_numbers))
        return np.concatenate(parts, axis=1).astype(np.float32)

    def numbers(self, column: dict[str, Any], values: list[str], source: str,
                row_numbers: list[int]) -> np.ndarray:
        out = np.empty(len(values), np.float64)
        for i, value in enumerate(values):
            if is_missing(value):
                if self.fill_missing == "none":
                    raise missing_error(source, row_numbers[i], column["name"])
                out[i] = column["fill"]
                continue
            number = as_number(value)
            if number is None:
                raise DataError(f"{source}: row {row_numbers[i]}, column {column['name']!r} is "
                                f"{value!r}, not a number")
            out[i] = number
        return (out - column["mean"]) / column["std"]

    def to_json(self) -> dict[str, Any]:
        return {"kind": "table", "target": self.target, "columns": self.columns,
                "fill_missing": self.fill_missing}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TableSchema:
        return cls(data["target"], list(data["columns"]), data.get("fill_missing", "none"))


def numeric_column(name: str, numbers: list[float | None], values: list[str], fill: str,
                   source: str, row_numbers: list[int]) -> dict[str, Any]:
    """A numeric column's standardisation, fitted on ``values`` with its holes filled as
    ``fill`` says (``numbers``: the values that are there)."""
    if len(numbers) < len(values) and fill == "none":
        first = next(i for i, v in enumerate(values) if is_missing(v))
        raise missing_error(source, row_numbers[first], name)
    present = [n for n in numbers if n is not None]
    hole = float(np.mean(present)) if fill == "mean" and present else 0.0
    filled = np.array([hole if is_missing(v) else float(v) for v in values], np.float64)
    std = float(filled.std())
    return {"name": name, "kind": "numeric", "mean": float(filled.mean()),
            "std": std if std > 0 else 1.0, "fill": hole}


def one_hot(column: dict[str, Any], values: list[str], fill: str, source: str,
            row_numbers: list[int]) -> np.ndarray:
    categories = column["categories"]
    index = {c: i for i, c in enumerate(categories)}
    out = np.zeros((len(values), len(categories)), np.float32)
    for i, value in enumerate(values):
        if is_missing(value):
            if fill == "none":
                raise missing_error(source, row_numbers[i], column["name"])
            continue  # a missing category: no column set
        position = index.get(value.strip())
        if position is None:
            raise DataError(f"{source}: row {row_numbers[i]}, column {column['name']!r} is "
                            f"{value!r}, a category training never saw (it knew "
                            f"{', '.join(categories)})")
        out[i, position] = 1.0
    return out


def missing_error(source: str, row: int, column: str) -> DataError:
    return DataError(f"{source}: row {row}, column {column!r} is missing; fill it in, or pass "
                     f"--fill-missing mean|zero")


def target_values(header: list[str], rows: list[list[str]], target: str, source: str,
                  row_numbers: list[int]) -> np.ndarray:
    """The target column as numbers where every value is one, else as text."""
    if not target:
        raise DataError(f"{source}: say which column to predict with --target (columns: "
                        f"{', '.join(header)})")
    if target not in header:
        raise DataError(f"{source}: no column {target!r} to predict; its columns are "
                        f"{', '.join(header)}")
    index = header.index(target)
    values = [row[index].strip() for row in rows]
    for i, value in enumerate(values):
        if is_missing(value):
            raise DataError(f"{source}: row {row_numbers[i]} has no target ({target!r} is "
                            f"missing)")
    numbers = [as_number(v) for v in values]
    if all(n is not None for n in numbers):
        return np.array(numbers, np.float64)
    return np.array(values)
