"""``trainkit evaluate CHECKPOINT``: the model rebuilt from the manifest alone, and scored."""

from __future__ import annotations

from pathlib import Path

import click

from trainkit.cli.app import AppState
from trainkit.cli.errors import cli_errors
from trainkit.cli.options import VERBOSE_HELP
from trainkit.formatting import format_value


@click.command("evaluate")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--data-dir", type=click.Path(path_type=Path), envvar="TRAINKIT_DATA_DIR",
              show_envvar=True, help="Folder that holds the dataset's files.")
@click.option("--batch-size", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Samples scored at a time (the scores do not depend on it).")
@click.option("-v", "--verbose", is_flag=True, help=VERBOSE_HELP)
@click.pass_obj
def evaluate_command(app: AppState, checkpoint: Path, data_dir: Path | None, batch_size: int,
                     verbose: bool) -> None:
    """Print loss and metrics of CHECKPOINT on its dataset's test split.

    CHECKPOINT is a checkpoint file or a run folder (its final.npz, else the newer of last.npz
    and emergency.npz).
    """
    from trainkit import run as runlib
    from trainkit.checkpoint_io import load_checkpoint
    from trainkit.errors import CheckpointError, ConfigError
    from trainkit.run_folder import model_in_run_folder
    from trainkit.snapshot import restore

    with cli_errors(verbose or app.verbose):
        if checkpoint.is_dir():
            checkpoint = model_in_run_folder(checkpoint)
        manifest, arrays = load_checkpoint(checkpoint)
        runlib.check_components_installed(manifest, app.registry, app.pm, str(checkpoint),
                                          kinds=(*runlib.SINGLE_KINDS, "metric"))
        config = dict(manifest.get("config") or {})
        config = {k: v for k, v in config.items() if not isinstance(v, dict)}
        config.update(plugin=[], no_plugin=app.registry.defaults(), out=None)
        if data_dir is not None:
            config["data_dir"] = str(data_dir)
        try:
            run = runlib.resolve(config, app.registry)
        except ConfigError as e:  # the checkpoint's config, not an option of this command
            raise CheckpointError(f"{checkpoint}: {e}") from None
        runlib.build(run, app.pm)
        restore(run.trainer, manifest, arrays, source=str(checkpoint))
        run.test_loader.batch_size = batch_size
        logs = run.trainer.evaluate(run.test_loader, prefix="test_")
        parts = " ".join(f"{k}: {format_value(v, 4)}" for k, v in logs.items())
        click.echo(f"{checkpoint} (epoch {manifest.get('epoch')}) on {config.get('dataset')} "
                   f"test: {parts}")
