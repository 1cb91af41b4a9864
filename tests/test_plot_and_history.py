"""plot writes a real PNG of both curves; history writes CSV and JSON Lines every epoch."""

from __future__ import annotations

import csv
import json

import pytest
from click.testing import CliRunner

from trainkit.cli import make_cli

pytest.importorskip("matplotlib")

TRAIN_BLUE, VALIDATION_ORANGE = (0x1F, 0x77, 0xB4), (0xFF, 0x7F, 0x0E)  # matplotlib's C0, C1


def has_color(image, rgb, pixels: int = 20) -> bool:
    """At least ``pixels`` pixels of exactly this colour (a drawn line, not anti-aliasing)."""
    import numpy as np

    target = np.array(rgb) / 255
    return int((np.abs(image[..., :3] - target).max(axis=-1) < 0.01).sum()) >= pixels


def test_plot_and_history_files(synthetic_dir, tmp_path):
    result = CliRunner().invoke(make_cli(), [
        "run", "--dataset", "idx", "--data-dir", str(synthetic_dir), "--epochs", "2", "--out", "run",
        "--plugin", "plot", "--plugin", "history", "--plot-width", "4", "--plot-height", "3"],
        catch_exceptions=False)
    assert result.exit_code == 0, result.output
    from matplotlib.image import imread

    image = imread(tmp_path / "run" / "curves.png")
    assert image.shape[:2] == (300, 800)  # two panels (loss, acc) of 4x3 inches at 100 dpi
    for half in (image[:, :400], image[:, 400:]):  # each panel draws both curves
        assert has_color(half, TRAIN_BLUE) and has_color(half, VALIDATION_ORANGE)

    with open(tmp_path / "run" / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert set(rows[0]) == {"epoch", "loss", "acc", "val_loss", "val_acc", "lr", "test_loss",
                            "test_acc"}
    assert rows[0]["test_acc"] == "" and float(rows[1]["test_acc"]) > 0  # scored once, at the end
    lines = (tmp_path / "run" / "history.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    assert float(rows[1]["val_acc"]) == json.loads(lines[1])["val_acc"]


def test_plot_draws_train_and_validation_curves(tmp_path):
    from matplotlib.image import imread

    from trainkit.plugins.plot import Plot

    rows = [{"loss": 1.0, "val_loss": 1.2, "lr": 0.1}, {"loss": 0.5, "val_loss": 0.9, "lr": 0.1}]
    plot = Plot(width=3, height=2)
    plot.draw(rows, tmp_path / "p.png")
    image = imread(tmp_path / "p.png")
    assert image.shape[:2] == (200, 300)  # one panel: lr is not a curve
    assert has_color(image, TRAIN_BLUE) and has_color(image, VALIDATION_ORANGE)
    plot.draw([{"loss": 1.0}, {"loss": 0.5}], tmp_path / "train-only.png")
    assert not has_color(imread(tmp_path / "train-only.png"), VALIDATION_ORANGE)


def test_without_matplotlib_the_plot_plugin_says_how_to_get_it(synthetic_dir, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "matplotlib" else real(name, *a))
    result = CliRunner().invoke(make_cli(), ["run", "--dataset", "idx", "--data-dir", str(synthetic_dir),
                                             "--plugin", "plot"])
    assert result.exit_code == 2
    assert "pip install 'trainkit[plot]'" in result.output and "Traceback" not in result.output


def test_the_plot_is_drawn_at_the_end_not_after_every_short_epoch(tmp_path):
    from types import SimpleNamespace

    from trainkit.loop.trainer import EpochLog
    from trainkit.plugins.plot import Plot

    trainer = SimpleNamespace(context=SimpleNamespace(is_main_process=True, run_dir=tmp_path),
                              history=EpochLog([{"loss": 1.0}]))
    plot = Plot()  # interval 30 s: far longer than this test
    plot.on_fit_start()
    for loss in (0.5, 0.25):
        trainer.history.append({"loss": loss})
        plot.on_epoch_end(trainer)
    assert not (tmp_path / "curves.png").exists()
    plot.on_fit_end(trainer)
    assert (tmp_path / "curves.png").exists()
