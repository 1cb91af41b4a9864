"""``--dataset csv``: a CSV table, one row per sample, one column the target.

Numeric columns are standardised with the training rows' statistics, text columns of a few
values are one-hot categories, and missing values are refused (naming the row and column)
unless ``--fill-missing mean|zero``; ``trainkit.data.tables`` does it, and checkpoints keep its
schema so that ``evaluate`` and ``predict`` transform new rows exactly as training did. The
target decides the task (``trainkit.data.targets``): classes, a yes or no, or real values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from trainkit import hookimpl
from trainkit.errors import DataError


class CSVTable:
    """A CSV table with a header row; --target names the column to predict.

    Args:
        data_file: the .csv file.
        target: the column to predict.
        task: auto (from the target column), classification, binary or regression.
        fill_missing: none (a missing value is an error), mean (the training rows' mean) or zero.
        test_split: the share of rows held out for testing.
        split_seed: the seed of that split.
    """

    def __init__(self, data_file: Path | None = None, target: str = "",
                 task: Literal["auto", "classification", "binary", "regression"] = "auto",
                 fill_missing: Literal["none", "mean", "zero"] = "none",
                 test_split: float = 0.2, split_seed: int = 0) -> None:
        self.data_file = Path(data_file) if data_file is not None else None
        self.target, self.task, self.fill_missing = target, task, fill_missing
        self.test_split, self.split_seed = test_split, split_seed

    def load(self):
        from trainkit.data import DatasetSplits
        from trainkit.data.tables import TableSchema, read_csv, target_values
        from trainkit.data.targets import split_rows, targets_for

        if self.data_file is None:
            raise DataError("dataset csv needs --data-file, a .csv table, and --target")
        source = str(self.data_file)
        header, rows = read_csv(self.data_file)
        numbers = list(range(2, len(rows) + 2))  # the file's line numbers, header first
        values = target_values(header, rows, self.target, source, numbers)
        task, targets, names = targets_for(values, self.task, f"{source} column "
                                                              f"{self.target!r}")
        train, test = split_rows(len(rows), self.test_split, self.split_seed, source)
        train_rows, test_rows = [rows[i] for i in train], [rows[i] for i in test]
        train_numbers, test_numbers = [numbers[i] for i in train], [numbers[i] for i in test]
        schema = TableSchema.fit(header, train_rows, self.target, self.fill_missing, source,
                                 train_numbers)
        x_train = schema.transform(header, train_rows, source, train_numbers)
        x_test = schema.transform(header, test_rows, source, test_numbers)
        return DatasetSplits("csv", x_train, targets[train], x_test, targets[test], len(names),
                             names or None, task=task, preprocessing=schema.to_json())


@hookimpl
def register_datasets(register):
    register("csv", CSVTable)
