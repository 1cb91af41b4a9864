"""history: every epoch's metrics (and lr) as history.csv and history.jsonl in the run folder.

Both files are rewritten from ``trainer.history`` after every epoch, and once more when the run
ends, with the test scores in the last row (atomically, through a temporary file), so after a
resume they hold exactly the epochs the run really has.
"""

from __future__ import annotations

import csv
import io
import json

from trainkit import hookimpl
from trainkit.persist.atomic import atomic_write


class HistoryFiles:
    """Write every epoch's metrics to history.csv and history.jsonl in the run folder."""

    def __init__(self) -> None:
        self.name = "history"

    @hookimpl(trylast=True)  # after plugins that add to the logs: they are reported too
    def on_epoch_end(self, trainer):
        self.write(trainer)

    @hookimpl
    def on_fit_end(self, trainer):
        self.write(trainer)  # with the test scores, added to the last row once scored

    def write(self, trainer) -> None:
        if not trainer.context.is_main_process or trainer.context.run_dir is None:
            return
        rows = [{"epoch": i + 1, **row} for i, row in enumerate(trainer.history.rows)]
        if not rows:
            return
        columns = list(dict.fromkeys(key for row in rows for key in row))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        trainer.context.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(trainer.context.run_dir / "history.csv", buffer.getvalue())
        atomic_write(trainer.context.run_dir / "history.jsonl",
                         "".join(json.dumps(row) + "\n" for row in rows))


@hookimpl
def register_run_plugins(register):
    register("history", HistoryFiles)


def __getattr__(name: str):
    if name == "History":  # this class's name until it was told apart from the epoch log
        import warnings

        warnings.warn("trainkit.plugins.history.History is now HistoryFiles", DeprecationWarning,
                      stacklevel=2)
        return HistoryFiles
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
