"""``trainkit export RUN|CHECKPOINT --format onnx -o model.onnx``: a trained model for use
outside trainkit."""

from __future__ import annotations

from pathlib import Path

import click

from trainkit.cli.app import AppState
from trainkit.cli.errors import cli_errors
from trainkit.cli.options import VERBOSE_HELP

FORMAT_NAMES = ("onnx", "safetensors")  # trainkit.export.FORMATS, without importing it here


@click.command("export", short_help="A trained model as ONNX or safetensors.")
@click.argument("checkpoint", metavar="RUN|CHECKPOINT", type=click.Path(path_type=Path))
@click.option("-f", "--format", "format_", type=click.Choice(FORMAT_NAMES), default="onnx",
              show_default=True, help="onnx: the evaluation-mode graph, checked with "
              "onnx.checker (extra trainkit[onnx]); safetensors: the weights and buffers with "
              "the config in the metadata (extra trainkit[safetensors]).")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
              help="The file to write (its folder must exist; written whole or not at all).")
@click.option("--probabilities", is_flag=True,
              help="ONNX: add a softmax output, probabilities, beside the logits.")
@click.option("--float-input", is_flag=True,
              help="ONNX: take float inputs already scaled as in training, instead of uint8 "
                   "pixels scaled inside the graph.")
@click.option("-v", "--verbose", is_flag=True, help=VERBOSE_HELP)
@click.pass_obj
def export_command(app: AppState, checkpoint: Path, format_: str, output: Path,
                   probabilities: bool, float_input: bool, verbose: bool) -> None:
    """Write the model of RUN|CHECKPOINT (a run folder or a checkpoint file) for ONNX Runtime,
    another framework or a model hub. The model is the one `trainkit predict` uses, in
    evaluation mode; its classes, config and expected input go into the file's metadata."""
    from trainkit.export import export
    from trainkit.session.inference import load_trained_model

    with cli_errors(verbose or app.verbose):
        trained = load_trained_model(checkpoint, app.registry, app.pm)
        export(trained, output, format_, probabilities=probabilities, float_input=float_input)
        click.echo(f"trainkit: {trained.source} exported as {format_} to {output}", err=True)
