"""``trainkit evaluate CHECKPOINT``: the model rebuilt from the manifest alone, scored on a split,
with a per-class report (precision, recall, F1, support), for people or, with ``--json``,
machines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from trainkit.cli.app import EVALUATE_SHORT_HELP, AppState
from trainkit.cli.errors import cli_errors
from trainkit.cli.options import VERBOSE_HELP, GroupedCommand, GroupedOption
from trainkit.loop.formatting import format_value


def make_evaluate_command(app: AppState) -> click.Command:
    """``trainkit evaluate``, with ``--metric`` choices and the metrics' own options."""

    def callback(checkpoint: Path, split: str, metric: tuple[str, ...], as_json: bool,
                 data_dir: Path | None, batch_size: int, verbose: bool, **options: Any) -> None:
        from trainkit.session.evaluation import evaluate_checkpoint

        with cli_errors(verbose or app.verbose):
            given = {k: v for k, v in options.items() if v is not None}
            report = evaluate_checkpoint(checkpoint, app.registry, app.pm, split=split,
                                         metrics=list(metric), options=given,
                                         data_dir=data_dir, batch_size=batch_size)
        click.echo(json.dumps(report, indent=2) if as_json else format_report(report))

    return GroupedCommand(
        "evaluate", params=evaluate_options(app), callback=callback,
        short_help=EVALUATE_SHORT_HELP,
        help="Score CHECKPOINT on a split of its dataset: loss, metrics and a per-class report "
             "(precision, recall, F1, support).\n\nCHECKPOINT is a checkpoint file or a run "
             "folder (its final.npz, else the newer of last.npz and emergency.npz).")


def evaluate_options(app: AppState) -> list[click.Parameter]:
    from trainkit.cli.run import component_options
    from trainkit.session.config import component_option_owners

    owners = {name: owned for name, owned in component_option_owners(app.registry).items()
              if all(kind == "metric" for kind, _ in owned)}

    def option(*decls: str, **kwargs: Any) -> GroupedOption:
        return GroupedOption(list(decls), group="Options", **kwargs)

    return [
        click.Argument(["checkpoint"], type=click.Path(path_type=Path)),
        option("--split", type=click.Choice(["test", "val", "train"]), default="test",
               show_default=True, help="What to score: the test split, the run's seeded "
                                       "validation split, or the rest of the training file."),
        option("--metric", type=click.Choice(app.registry.names("metric")), multiple=True,
               help="Metric to compute (repeatable).  [default: the checkpoint's metrics]"),
        option("--json", "as_json", is_flag=True,
               help="Print one JSON object: metrics, per-class report, confusion matrix."),
        option("--data-dir", type=click.Path(path_type=Path), envvar="TRAINKIT_DATA_DIR",
               help="Folder that holds the dataset's files."),
        option("--batch-size", type=click.IntRange(min=1), default=1000, show_default=True,
               help="Samples scored at a time (the scores do not depend on it)."),
        option("-v", "--verbose", is_flag=True, help=VERBOSE_HELP),
        *component_options(app, owners),
    ]


def format_report(report: dict[str, Any]) -> str:
    """The header line of scores, then a table like scikit-learn's ``classification_report``."""
    split = report["split"]
    scores = " ".join(f"{split}_{k}: {format_value(v, 4)}" for k, v in report["metrics"].items())
    note = " (the test split: the run validated on it)" if report["validated_on_test"] else ""
    lines = [f"{report['checkpoint']} (epoch {report['epoch']}) on {report['dataset']} "
             f"{split}{note}: {scores}", ""]
    if "classes" not in report:  # a regression: the scores are the report
        return lines[0]
    width = max(12, *(len(name) for name in report["classes"]))
    lines.append(f"{'':>{width}}  {'precision':>9}  {'recall':>9}  {'f1':>9}  {'support':>9}")
    for name, row in report["classes"].items():
        if name == "macro avg":
            lines.append("")
        lines.append(f"{name:>{width}}  {row['precision']:>9.4f}  {row['recall']:>9.4f}  "
                     f"{row['f1']:>9.4f}  {row['support']:>9}")
    return "\n".join(lines)
