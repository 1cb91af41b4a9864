"""trainkit evaluate: the model and preprocessing rebuilt from the manifest alone."""

from __future__ import annotations

import re

from click.testing import CliRunner

from trainkit.cli import make_cli
from trainkit.persist.checkpoint_io import load_checkpoint


def test_evaluate_of_a_run_folder_reproduces_the_runs_test_scores(synthetic_dir, tmp_path):
    trained = CliRunner().invoke(make_cli(), [
        "run", "--dataset", "idx", "--data-dir", str(synthetic_dir), "--epochs", "2", "--out", "run",
        "--hidden", "32,16", "--activation", "tanh", "--metric", "accuracy",
        "--metric", "top-k-accuracy", "--k", "2"],
        catch_exceptions=False)
    assert trained.exit_code == 0, trained.output
    manifest, _ = load_checkpoint(tmp_path / "run" / "final.npz")
    last = manifest["history"][-1]
    result = CliRunner().invoke(make_cli(), ["evaluate", "run", "--data-dir",
                                             str(synthetic_dir)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "final.npz" in result.output  # a run folder is scored by the model it handed over
    values = dict(re.findall(r"(\w+): ([0-9.]+)", result.output))
    assert float(values["test_acc"]) == round(last["test_acc"], 4)
    assert float(values["test_top2_acc"]) == round(last["test_top2_acc"], 4)
    assert abs(float(values["test_loss"]) - last["test_loss"]) < 1e-4


def test_evaluate_a_missing_checkpoint(tmp_path):
    result = CliRunner().invoke(make_cli(), ["evaluate", "nope.npz"])
    assert result.exit_code == 1 and "nope.npz: checkpoint not found" in result.output


# --------------------------------------------------------------------------- per-class, predict

import json  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from trainkit.data import read_idx  # noqa: E402


@pytest.fixture(scope="module")
def trained_run(synthetic_dir, tmp_path_factory):
    """A short run with precision, recall and F1, and the confusion-matrix plugin."""
    folder = tmp_path_factory.mktemp("trained") / "run"
    result = CliRunner().invoke(make_cli(), [
        "run", "--dataset", "idx", "--data-dir", str(synthetic_dir), "--epochs", "2",
        "--hidden", "16", "--out", str(folder), "--val-split", "0", "--metric", "accuracy",
        "--metric", "f1", "--metric", "precision", "--metric", "recall",
        "--plugin", "confusion-matrix"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return folder


def evaluate_json(*args):
    result = CliRunner().invoke(make_cli(), ["evaluate", *map(str, args), "--json"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_evaluate_json_equals_scikit_learn_on_predicts_output_at_any_batch_size(
        trained_run, synthetic_dir, tmp_path):
    from sklearn.metrics import f1_score, precision_score, recall_score

    predictions = tmp_path / "predictions.csv"
    predicted = CliRunner().invoke(make_cli(), [
        "predict", str(trained_run), str(synthetic_dir / "t10k-images-idx3-ubyte.gz"),
        "-o", str(predictions)], catch_exceptions=False)
    assert predicted.exit_code == 0, predicted.output
    rows = predictions.read_text().splitlines()
    assert rows[0].split(",")[:3] == ["input", "class", "name"]
    classes = np.array([int(row.split(",")[1]) for row in rows[1:]])
    targets = read_idx(synthetic_dir / "t10k-labels-idx1-ubyte.gz")
    assert len(classes) == len(targets)
    expected = {"f1": f1_score(targets, classes, average="macro", zero_division=0),
                "precision": precision_score(targets, classes, average="macro", zero_division=0),
                "recall": recall_score(targets, classes, average="macro", zero_division=0)}
    assert len(set(expected.values())) == 3  # three different numbers: nothing is mixed up
    reports = [evaluate_json(trained_run, "--data-dir", synthetic_dir, "--batch-size", size)
               for size in (1000, 7)]
    for report in reports:
        for name, value in expected.items():
            assert abs(report["metrics"][name] - value) < 1e-6, name
    for name in expected:  # counts add up exactly, in any batch size
        assert reports[0]["metrics"][name] == reports[1]["metrics"][name]
    assert reports[0]["samples"] == len(targets)
    assert [row["support"] for name, row in reports[0]["classes"].items()
            if "avg" not in name] == np.bincount(targets, minlength=10).tolist()


def test_evaluate_prints_a_per_class_report_and_scores_the_validation_split(
        trained_run, synthetic_dir):
    result = CliRunner().invoke(make_cli(), ["evaluate", str(trained_run), "--data-dir",
                                             str(synthetic_dir), "--metric", "f1",
                                             "--average", "weighted"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "test_f1:" in lines[0] and "test_acc" not in lines[0]  # --metric replaced them
    header = lines[2].split()
    assert header == ["precision", "recall", "f1", "support"]
    assert [line.split()[0] for line in lines[3:13]] == [str(i) for i in range(10)]
    assert "macro avg" in result.output and "weighted avg" in result.output
    # --val-split 0: the run validated on the test split, and evaluate says so
    val = evaluate_json(trained_run, "--data-dir", synthetic_dir, "--split", "val")
    assert val["validated_on_test"] is True
    manifest, _ = load_checkpoint(trained_run / "final.npz")
    assert val["metrics"]["f1"] == pytest.approx(manifest["history"][-1]["val_f1"], abs=1e-12)


def test_evaluate_split_val_reproduces_the_runs_validation_scores(synthetic_dir, tmp_path):
    folder = tmp_path / "run"
    result = CliRunner().invoke(make_cli(), [
        "run", "--dataset", "idx", "--data-dir", str(synthetic_dir), "--epochs", "1",
        "--hidden", "16", "--out", str(folder), "--metric", "f1"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    last = load_checkpoint(folder / "final.npz")[0]["history"][-1]
    val = evaluate_json(folder, "--data-dir", synthetic_dir, "--split", "val")
    assert val["validated_on_test"] is False
    assert val["samples"] == round(0.1 * 512)
    assert val["metrics"]["f1"] == pytest.approx(last["val_f1"], abs=1e-12)
    train = evaluate_json(folder, "--data-dir", synthetic_dir, "--split", "train")
    assert train["samples"] == 512 - val["samples"]


def test_the_confusion_matrix_files_add_up(trained_run, synthetic_dir):
    import csv

    targets = read_idx(synthetic_dir / "t10k-labels-idx1-ubyte.gz")
    last = load_checkpoint(trained_run / "final.npz")[0]["history"][-1]
    for stem, accuracy in (("confusion_matrix", last["val_acc"]),
                           ("test_confusion_matrix", last["test_acc"])):
        with open(trained_run / f"{stem}.csv", newline="") as f:
            rows = list(csv.reader(f))
        assert rows[0][1:] == [str(i) for i in range(10)]
        matrix = np.array([[int(v) for v in row[1:]] for row in rows[1:]])
        assert matrix.sum(axis=1).tolist() == np.bincount(targets, minlength=10).tolist()
        assert np.trace(matrix) == round(accuracy * len(targets))
        assert (trained_run / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_predict_reads_npy_and_png_folders_and_refuses_other_shapes(trained_run, synthetic_dir,
                                                                     tmp_path):
    from PIL import Image

    images = read_idx(synthetic_dir / "t10k-images-idx3-ubyte.gz")[:4]
    np.save(tmp_path / "four.npy", images)
    np.save(tmp_path / "floats.npy", images[..., None].astype(np.float32) / 255)
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"img{i}.png")

    def predict(*args):
        return CliRunner().invoke(make_cli(), ["predict", str(trained_run), *map(str, args)])

    csv_rows = [predict(tmp_path / name).output.splitlines()[1:] for name in
                ("four.npy", "floats.npy")]
    classes = [row.split(",")[1] for row in csv_rows[0]]
    assert [row.split(",")[1] for row in csv_rows[1]] == classes
    from_png = predict(folder).output.splitlines()[1:]
    assert [row.split(",")[0] for row in from_png] == [f"img{i}.png" for i in range(4)]
    assert [row.split(",")[1] for row in from_png] == classes
    out = tmp_path / "p.npy"
    assert predict(tmp_path / "four.npy", "-o", out, "--probabilities").exit_code == 0
    probabilities = np.load(out)
    assert probabilities.shape == (4, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)
    assert probabilities.argmax(axis=1).astype(str).tolist() == classes

    np.save(tmp_path / "small.npy", images[:, :27, :27])
    np.save(tmp_path / "ints.npy", images.astype(np.int64))
    Image.fromarray(images[0, :20, :20]).save(folder / "small.png")
    for bad, named in ((tmp_path / "small.npy", "small.npy"), (tmp_path / "ints.npy", "ints.npy"),
                       (folder, "small.png")):
        result = predict(bad)
        assert result.exit_code == 1
        assert named in result.output
        assert "28, 28" in result.output or "28x28" in result.output
        assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_predict_with_a_convnet(synthetic_dir, tmp_path):
    folder = tmp_path / "cnn"
    result = CliRunner().invoke(make_cli(), [
        "run", "--dataset", "idx", "--data-dir", str(synthetic_dir), "--epochs", "1",
        "--model", "cnn", "--channels", "2,4", "--dense", "8", "--limit-batches", "2",
        "--out", str(folder)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    predicted = CliRunner().invoke(make_cli(), [
        "predict", str(folder), str(synthetic_dir / "t10k-images-idx3-ubyte.gz")],
        catch_exceptions=False)
    assert predicted.exit_code == 0, predicted.output
    assert len(predicted.output.splitlines()) == 1 + 256


@pytest.mark.parametrize("scale,shift,found", [(255.0, 0.0, "[0, 255]"), (2.0, 0.0, "[0, 2]"),
                                               (1.0, -0.5, "[-0.5, 0.5]")])
def test_predict_refuses_floats_outside_the_trained_range_unless_told(
        trained_run, synthetic_dir, tmp_path, scale, shift, found):
    images = read_idx(synthetic_dir / "t10k-images-idx3-ubyte.gz")[:20]
    images[:, 0, 0], images[:, 0, 1] = 0, 255  # every image spans the whole range
    unscaled = tmp_path / "unscaled.npy"
    np.save(unscaled, images.astype(np.float32) / 255 * scale + shift)
    result = CliRunner().invoke(make_cli(), ["predict", str(trained_run), str(unscaled)])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: {unscaled}: float inputs range over {found}; the model was trained on inputs in "
        f"[0, 1]{' (pixels in 0-255? divide them by 255, or give them as uint8)' if scale > 1 else ''}"
        f"; scale them as in training, or pass --assume-scaled to predict on them as they are"]
    told = CliRunner().invoke(make_cli(), ["predict", str(trained_run), str(unscaled),
                                           "--assume-scaled"])
    assert told.exit_code == 0 and len(told.output.splitlines()) == 21


def test_predict_refuses_nan_inputs_and_reads_the_range_from_the_checkpoint(trained_run,
                                                                           tmp_path):
    from trainkit.persist.checkpoint_io import load_checkpoint

    assert load_checkpoint(trained_run / "last.npz")[0]["data"]["input_range"] == [0.0, 1.0]
    bad = np.full((3, 28, 28), 0.5, np.float32)
    bad[1, 3, 3] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    result = CliRunner().invoke(make_cli(), ["predict", str(trained_run), str(tmp_path / "nan.npy"),
                                             "--assume-scaled"])
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: {tmp_path / 'nan.npy'}: 1 input(s) hold NaN or inf values"
