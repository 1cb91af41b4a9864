"""Validation is held out of the training set, seeded; the test split never steers training."""

from __future__ import annotations

import numpy as np
from click.testing import CliRunner

from trainkit.cli import make_cli
from trainkit.plugin.manager import get_plugin_manager
from trainkit.plugin.registry import Registry
from trainkit.session import assembly


def build(synthetic_dir, **config):
    pm = get_plugin_manager()
    run = assembly.resolve({"dataset": "idx", "data_dir": str(synthetic_dir), "out": "run",
                          **config}, Registry.collect(pm))
    return assembly.build(run, pm)


def rows(images) -> set[bytes]:
    """The samples of an array, or of a loader (only those it serves)."""
    if hasattr(images, "subset"):
        images = images.images if images.subset is None else images.images[images.subset]
    return {row.tobytes() for row in images.reshape(len(images), -1)}


def test_the_validation_split_is_held_out_of_the_training_file_and_never_test(synthetic_dir):
    run = build(synthetic_dir)
    splits = run.splits
    train, val = rows(run.train_loader), rows(run.val_loader)
    assert len(run.val_loader.labels) == round(0.1 * len(splits.train_labels))
    assert len(run.train_loader.labels) + len(run.val_loader.labels) == len(splits.train_labels)
    assert not train & val                       # no sample trains and validates
    assert val <= rows(splits.train_images)      # validation comes from the training file
    assert not val & rows(splits.test_images)    # and no test sample is in it
    assert rows(run.test_loader) == rows(splits.test_images)


def test_the_split_is_seeded(synthetic_dir):
    a, b = build(synthetic_dir), build(synthetic_dir)
    np.testing.assert_array_equal(a.val_loader.labels, b.val_loader.labels)
    c = build(synthetic_dir, seed=7)
    assert rows(c.val_loader) != rows(a.val_loader)


def test_val_split_0_validates_on_the_test_split_with_a_warning(synthetic_dir):
    run = build(synthetic_dir, val_split=0)
    assert rows(run.val_loader) == rows(run.splits.test_images)
    result = CliRunner().invoke(make_cli(), ["run", "--dataset", "idx", "--data-dir",
                                             str(synthetic_dir), "--epochs", "1", "--val-split",
                                             "0", "--out", "run"])
    assert result.exit_code == 0, result.output
    assert "warning: --val-split 0 validates on the test split" in result.output


def test_a_split_that_leaves_nothing_is_refused(synthetic_dir):
    result = CliRunner().invoke(make_cli(), ["run", "--dataset", "idx", "--data-dir",
                                             str(synthetic_dir), "--val-split", "0.0001"])
    assert result.exit_code == 2
    assert "leaves 0 for validation" in result.output
