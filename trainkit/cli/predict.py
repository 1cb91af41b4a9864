"""``trainkit predict CHECKPOINT INPUT``: a trained model's classes (and probabilities) for new
inputs, to CSV or ``.npy``."""

from __future__ import annotations

from pathlib import Path

import click

from trainkit.cli.app import AppState
from trainkit.cli.errors import cli_errors
from trainkit.cli.options import VERBOSE_HELP


@click.command("predict", short_help="Classes of new inputs (IDX, .npy, PNGs) from a checkpoint.")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.argument("inputs", metavar="INPUT", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="A .csv or .npy file to write.  [default: CSV on standard output]")
@click.option("--probabilities", is_flag=True,
              help="Also give every class's probability (a .npy file then holds the (N, classes) "
                   "probabilities instead of the classes).")
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True,
              help="Inputs scored at a time (the results do not depend on it).")
@click.option("--assume-scaled", is_flag=True,
              help="Take float inputs as they are, even outside the range the model was trained "
                   "on (refused otherwise, as a sign of unscaled pixels).")
@click.option("-v", "--verbose", is_flag=True, help=VERBOSE_HELP)
@click.pass_obj
def predict_command(app: AppState, checkpoint: Path, inputs: Path, output: Path | None,
                    probabilities: bool, batch_size: int, assume_scaled: bool,
                    verbose: bool) -> None:
    """Predict the class of every input in INPUT with the model of CHECKPOINT.

    CHECKPOINT is a checkpoint file or a run folder (its final.npz, else the newest checkpoint).
    INPUT is an IDX file, a .npy array of images, or a folder of PNG images; every input must
    have the shape the model was trained on (28x28 for MNIST), as uint8 pixels or floats in
    the range training saw ([0, 1] for images; see --assume-scaled). The CSV has one row per
    input: its index (or PNG file name), the class and its name,
    and with --probabilities one column per class.
    """
    from trainkit.errors import ConfigError
    from trainkit.session.inference import (
        load_trained_model,
        predictions,
        read_inputs,
    )
    from trainkit.session.inference import (
        probabilities as class_probabilities,
    )

    with cli_errors(verbose or app.verbose):
        if output is not None and output.suffix not in (".csv", ".npy"):
            raise ConfigError(f"{output}: the output must end in .csv or .npy", "output")
        trained = load_trained_model(checkpoint, app.registry, app.pm)
        images, names = read_inputs(inputs, trained.image_shape,
                                    None if assume_scaled else trained.input_range,
                                    trained.preprocessing)
        scores = trained.scores(images, batch_size)
        predicted = predictions(scores, trained.task)
        if trained.task == "regression":
            if probabilities:
                raise ConfigError("--probabilities: the model gives values (a regression), "
                                  "not classes", "probabilities")
            write_values(output, names, predicted)
        else:
            chances = class_probabilities(scores, trained.task) if probabilities else None
            write_predictions(output, names, predicted, trained.class_names, chances)
        if output is not None:
            click.echo(f"trainkit: {len(predicted):,} predictions of {trained.source} written to "
                       f"{output}", err=True)


def write_predictions(output, names, classes, class_names, chances) -> None:
    """A ``.npy`` of the classes (or probabilities), else CSV, to ``output`` or stdout."""
    if output is not None and output.suffix == ".npy":
        import numpy as np

        from trainkit.persist.atomic import atomic_file

        with atomic_file(output) as f:
            np.save(f, chances if chances is not None else classes.astype(np.int64),
                    allow_pickle=False)
        return
    text = predictions_csv(names, classes, class_names, chances)
    if output is None:
        click.echo(text, nl=False)
    else:
        from trainkit.persist.atomic import atomic_write

        atomic_write(output, text)


def write_values(output, names, values) -> None:
    """A regression's values: a ``.npy`` array, else CSV (``input,value`` or one column per
    output)."""
    import csv
    import io

    import numpy as np

    if output is not None and output.suffix == ".npy":
        from trainkit.persist.atomic import atomic_file

        with atomic_file(output) as f:
            np.save(f, np.asarray(values, np.float32), allow_pickle=False)
        return
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    columns = values.reshape(len(values), -1)
    writer.writerow(["input", *(["value"] if columns.shape[1] == 1 else
                                [f"value_{i}" for i in range(columns.shape[1])])])
    for name, row in zip(names, columns):
        writer.writerow([name, *(f"{v:.9g}" for v in row)])
    if output is None:
        click.echo(out.getvalue(), nl=False)
    else:
        from trainkit.persist.atomic import atomic_write

        atomic_write(output, out.getvalue())


def predictions_csv(names, classes, class_names, chances=None) -> str:
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    header = ["input", "class", "name"]
    if chances is not None:
        header += [f"p_{name}" for name in class_names]
    writer.writerow(header)
    for i, (name, label) in enumerate(zip(names, classes)):
        row = [name, int(label), class_names[label]]
        if chances is not None:
            row += [f"{p:.6g}" for p in chances[i]]
        writer.writerow(row)
    return out.getvalue()
