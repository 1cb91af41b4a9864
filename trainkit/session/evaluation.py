"""Scoring a checkpoint on a split of its dataset: what ``trainkit evaluate`` reports.

The run is rebuilt from the checkpoint's manifest (the same seeded validation split), its
weights restored, and the split scored in evaluation mode with the run's metrics (or others),
plus the confusion matrix from which the per-class report follows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["evaluate_checkpoint"]


def restored_run(checkpoint: Path, registry, pm, metrics: list[str], options: dict[str, Any],
                 data_dir: Path | None):
    """``(run, manifest, checkpoint file)``: the run of ``checkpoint`` built and restored, with
    ``metrics`` (and metric ``options``) instead of its own when given."""
    from trainkit.session import assembly, resume
    from trainkit.session import config as run_config
    from trainkit.session.snapshot import restore

    kinds = run_config.SINGLE_KINDS if metrics else (*run_config.SINGLE_KINDS, "metric")
    checkpoint, manifest, arrays, run = resume.open_checkpoint(checkpoint, registry, pm, kinds,
                                                               data_dir)
    if metrics or options:  # other metrics than the run's, or other metric options
        run.config.update(metric=metrics or run.config["metric"], **options)
        run.metrics = assembly.resolve(run.config, registry).metrics
    built = assembly.build(run, pm)
    restore(built.trainer, manifest, arrays, source=str(checkpoint))
    return built, manifest, checkpoint


def evaluate_checkpoint(checkpoint: Path, registry, pm, *, split: str = "test",
                        metrics: list[str] | None = None, options: dict[str, Any] | None = None,
                        data_dir: Path | None = None, batch_size: int = 1000) -> dict[str, Any]:
    """The scores of ``checkpoint`` on ``split`` (``test``, ``val`` or ``train``): its loss and
    metrics, a per-class report and the confusion matrix, as a JSON-ready dict."""
    from trainkit.loop.metrics import ConfusionMatrix, class_report

    run, manifest, checkpoint = restored_run(Path(checkpoint), registry, pm, metrics or [],
                                             options or {}, data_dir)
    loader = {"test": run.test_loader, "val": run.val_loader,
              "train": run.train_loader.part(0, len(run.train_loader.labels))}[split]
    loader.batch_size, loader.limit_batches = batch_size, None
    trainer = run.trainer
    classes = run.splits.task != "regression"
    if classes:  # the per-class report follows from it
        trainer.add_evaluation_metric(ConfusionMatrix())
    logs = trainer.evaluate(loader, prefix=f"{split}_")
    report = {
        "checkpoint": str(checkpoint),
        "epoch": manifest.get("epoch"),
        "dataset": run.config.get("dataset"),
        "task": run.splits.task,
        "split": split,
        "validated_on_test": split == "val" and run.val_loader is run.test_loader,
        "samples": len(loader.labels),
        "metrics": {key.removeprefix(f"{split}_"): value for key, value in logs.items()},
    }
    if classes:
        matrix = trainer.results[f"{split}_confusion"]
        names = list(run.splits.class_names or range(len(matrix)))
        report["classes"] = {str(names[int(k)]) if k.isdigit() else k: row
                             for k, row in class_report(matrix).items()}
        report["confusion_matrix"] = matrix.tolist()
    return report
