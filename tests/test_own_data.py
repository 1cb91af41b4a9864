"""Your own data: image folders, arrays and CSV tables; classification, binary and regression.
Real data with no network: scikit-learn's bundled datasets, written out as a PNG folder, .npz
and .npy files and CSV tables."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import trainkit
from trainkit.cli import make_cli
from trainkit.data.targets import split_rows

sklearn_datasets = pytest.importorskip("sklearn.datasets")
metrics = pytest.importorskip("sklearn.metrics")


def invoke(args, plugins=()):
    return CliRunner().invoke(make_cli(plugins), args, catch_exceptions=False)


def run(*args):
    result = invoke(["run", "--no-plugin", "progress", *args])
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The digits as a PNG folder (a test folder beside it) and a .npz; breast cancer and
    diabetes as CSV tables; each with the test split trainkit's seeded split holds out."""
    from PIL import Image

    root = tmp_path_factory.mktemp("own-data")
    digits = sklearn_datasets.load_digits()
    pixels = (digits.images * 16).clip(0, 255).astype(np.uint8)
    train, test = split_rows(len(pixels), 0.2, 0, "digits")
    for part, rows in (("train", train), ("test", test)):
        for i in rows:
            folder = root / "digits" / part / str(digits.target[i])
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels[i]).save(folder / f"{i:04d}.png")
    np.savez(root / "digits.npz", x=pixels, y=digits.target)
    cancer = sklearn_datasets.load_breast_cancer()
    write_csv(root / "cancer.csv", [*cancer.feature_names, "diagnosis"],
              [[*x, ["malignant", "benign"][y]] for x, y in zip(cancer.data, cancer.target)])
    diabetes = sklearn_datasets.load_diabetes()
    write_csv(root / "diabetes.csv", [*diabetes.feature_names, "progression"],
              [[*x, y] for x, y in zip(diabetes.data, diabetes.target)])
    return root


def write_csv(path: Path, header, rows) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def test_digits_as_a_png_folder_train_and_predict_agrees_with_evaluate(files, tmp_path):
    run("--dataset", "folder", "--data-dir", str(files / "digits"), "--epochs", "30",
        "--out", str(tmp_path / "run"))
    report = json.loads(invoke(["evaluate", str(tmp_path / "run"), "--json"]).output)
    assert report["metrics"]["acc"] >= 0.95
    model = trainkit.load(tmp_path / "run")
    assert model.class_names == [str(i) for i in range(10)]
    hits = total = 0
    for folder in sorted((files / "digits" / "test").iterdir()):
        out = tmp_path / f"{folder.name}.csv"
        assert invoke(["predict", str(tmp_path / "run"), str(folder), "-o", str(out)]).exit_code == 0
        names = [row["name"] for row in csv.DictReader(out.open())]
        hits += sum(name == folder.name for name in names)
        total += len(names)
    assert total == report["samples"]
    assert hits / total == pytest.approx(report["metrics"]["acc"], abs=1e-12)


def test_a_second_run_reads_the_decoded_images_from_the_cache(files, tmp_path, monkeypatch):
    from trainkit.data import images

    run("--dataset", "folder", "--data-dir", str(files / "digits"), "--epochs", "1",
        "--limit-batches", "2", "--out", str(tmp_path / "first"))

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(images, "read_image", no_decoding)
    run("--dataset", "folder", "--data-dir", str(files / "digits"), "--epochs", "1",
        "--limit-batches", "2", "--out", str(tmp_path / "second"))


def test_breast_cancer_as_a_csv_is_binary_and_its_auc_is_scikit_learns(files, tmp_path):
    run("--dataset", "csv", "--data-file", str(files / "cancer.csv"), "--target", "diagnosis",
        "--epochs", "30", "--out", str(tmp_path / "run"))
    report = json.loads(invoke(["evaluate", str(tmp_path / "run"), "--json"]).output)
    assert report["task"] == "binary" and report["metrics"]["acc"] >= 0.95
    header, *rows = list(csv.reader((files / "cancer.csv").open()))
    _, test = split_rows(len(rows), 0.2, 0, "")
    write_csv(tmp_path / "test.csv", header, [rows[i] for i in test])
    result = invoke(["predict", str(tmp_path / "run"), str(tmp_path / "test.csv"),
                     "--probabilities", "-o", str(tmp_path / "p.npy")])
    assert result.exit_code == 0, result.output
    probabilities = np.load(tmp_path / "p.npy")
    truth = np.array([rows[i][-1] == "malignant" for i in test])  # class 1: names sorted
    assert trainkit.load(tmp_path / "run").class_names == ["benign", "malignant"]
    assert report["metrics"]["auc"] == pytest.approx(
        metrics.roc_auc_score(truth, probabilities[:, 1]), abs=1e-6)


def test_diabetes_as_a_csv_is_a_regression_as_good_as_scikit_learns(files, tmp_path):
    from sklearn.linear_model import Ridge
    from sklearn.preprocessing import StandardScaler

    run("--dataset", "csv", "--data-file", str(files / "diabetes.csv"), "--target",
        "progression", "--epochs", "50", "--out", str(tmp_path / "run"))
    report = json.loads(invoke(["evaluate", str(tmp_path / "run"), "--json"]).output)
    assert report["task"] == "regression" and "classes" not in report
    data = sklearn_datasets.load_diabetes()
    train, test = split_rows(len(data.target), 0.2, 0, "")
    scaler = StandardScaler().fit(data.data[train])
    ridge = Ridge().fit(scaler.transform(data.data[train]), data.target[train])
    reference = metrics.r2_score(data.target[test], ridge.predict(scaler.transform(data.data[test])))
    assert report["metrics"]["r2"] >= reference - 0.05
    header, *rows = list(csv.reader((files / "diabetes.csv").open()))
    write_csv(tmp_path / "test.csv", header, [rows[i] for i in test])
    assert invoke(["predict", str(tmp_path / "run"), str(tmp_path / "test.csv"), "-o",
                   str(tmp_path / "v.npy")]).exit_code == 0
    values, truth = np.load(tmp_path / "v.npy"), data.target[test]
    for name, reference in (("r2", metrics.r2_score(truth, values)),
                            ("mae", metrics.mean_absolute_error(truth, values)),
                            ("rmse", np.sqrt(metrics.mean_squared_error(truth, values)))):
        assert report["metrics"][name] == pytest.approx(reference, rel=1e-6, abs=1e-6), name


def test_arrays_from_npz_and_memory_mapped_npy_files(files, tmp_path):
    run("--dataset", "arrays", "--data-file", str(files / "digits.npz"), "--epochs", "3",
        "--out", str(tmp_path / "npz"))
    with np.load(files / "digits.npz") as digits:
        x, y = digits["x"], digits["y"]
    (tmp_path / "npy").mkdir()
    train, test = split_rows(len(x), 0.2, 0, "")
    for name, array in (("x_train", x[train]), ("y_train", y[train]), ("x_test", x[test]),
                        ("y_test", y[test])):
        np.save(tmp_path / "npy" / f"{name}.npy", array)
    from trainkit.plugins.arrays import Arrays

    splits = Arrays(tmp_path / "npy").load()
    assert isinstance(splits.train_images, np.memmap)  # read a batch at a time
    run("--dataset", "arrays", "--data-file", str(tmp_path / "npy"), "--epochs", "3",
        "--out", str(tmp_path / "from-npy"))
    npz = json.loads(invoke(["evaluate", str(tmp_path / "npz"), "--json"]).output)
    npy = json.loads(invoke(["evaluate", str(tmp_path / "from-npy"), "--json"]).output)
    assert npz["metrics"] == npy["metrics"]  # the same split, the same run


def test_a_session_trains_on_arrays_in_memory(tmp_path):
    from trainkit.session import Session

    digits = sklearn_datasets.load_digits()
    x = (digits.data / 16).astype(np.float32)
    outcome = Session({"epochs": 2, "out": str(tmp_path / "run"), "no_plugin": ["progress"]},
                      data=(x, digits.target), report=lambda *a, **k: None).fit()
    assert outcome.status == "completed"
    model = trainkit.load(tmp_path / "run")
    assert model.predict(x[:5]).shape == (5,)


@pytest.mark.parametrize("dataset", ["folder", "arrays", "csv"])
def test_resume_is_bit_exact_on_each_new_dataset(dataset, files, tmp_path):
    from trainkit.persist.checkpoint_io import load_checkpoint

    source = {"folder": ["--data-dir", str(files / "digits")],
              "arrays": ["--data-file", str(files / "digits.npz")],
              "csv": ["--data-file", str(files / "diabetes.csv"), "--target", "progression"]}
    args = ["--dataset", dataset, *source[dataset], "--plugin", "checkpoint"]
    run(*args, "--epochs", "2", "--out", str(tmp_path / "whole"))
    run(*args, "--epochs", "1", "--out", str(tmp_path / "cut"))
    run(*args, "--epochs", "2", "--resume", str(tmp_path / "cut"))
    whole = load_checkpoint(tmp_path / "whole" / "final.npz")[1]
    resumed = load_checkpoint(tmp_path / "cut" / "final.npz")[1]
    assert whole.keys() == resumed.keys()
    for key in whole:
        np.testing.assert_array_equal(whole[key], resumed[key], err_msg=key)


@pytest.mark.parametrize("dataset", ["csv", "folder", "arrays"])
def test_a_sweep_runs_on_each_new_dataset(dataset, files, tmp_path):
    pytest.importorskip("optuna")
    source, monitor = {
        "csv": (f'data_file = "{files / "cancer.csv"}"\ntarget = "diagnosis"', "val_auc"),
        "folder": (f'data_dir = "{files / "digits"}"', "val_acc"),
        "arrays": (f'data_file = "{files / "digits.npz"}"', "val_acc")}[dataset]
    spec = tmp_path / "spec.toml"
    spec.write_text(f'dataset = "{dataset}"\n{source}\nepochs = 2\n\n[sweep]\ntrials = 2\n'
                    f'monitor = "{monitor}"\n\n[sweep.search]\nlr = {{low = 1e-4, high = 1e-2, '
                    f'log = true}}\n')
    import matplotlib

    colours = matplotlib.rcParams["axes.prop_cycle"]
    result = invoke(["sweep", str(spec), "--out", str(tmp_path / "sweep")])
    assert result.exit_code == 0, result.output
    assert monitor in result.output
    # Optuna's plots in the report leave the process's matplotlib style as it was
    assert matplotlib.rcParams["axes.prop_cycle"] == colours


BAD = {
    "missing folder": (["--dataset", "folder", "--data-dir", "{tmp}/nowhere"], "nowhere"),
    "empty class": (["--dataset", "folder", "--data-dir", "{tmp}/empty"], "no image"),
    "mixed sizes": (["--dataset", "folder", "--data-dir", "{tmp}/mixed"], "--image-size"),
    "broken image": (["--dataset", "folder", "--data-dir", "{tmp}/broken"], "bad.png"),
    "text column": (["--dataset", "csv", "--data-file", "{tmp}/text.csv", "--target", "y"],
                    "column 'name'"),
    "missing target": (["--dataset", "csv", "--data-file", "{tmp}/nolabel.csv", "--target",
                        "y"], "row 3"),
    "missing value": (["--dataset", "csv", "--data-file", "{tmp}/hole.csv", "--target", "y"],
                      "row 4, column 'a'"),
    "no such target": (["--dataset", "csv", "--data-file", "{tmp}/text.csv", "--target",
                        "label"], "no column 'label'"),
    "pickled npy": (["--dataset", "arrays", "--data-file", "{tmp}/pickled"], "pickle"),
    "truncated image": (["--dataset", "folder", "--data-dir", "{tmp}/truncated"], "cut.png"),
    "decompression bomb": (["--dataset", "folder", "--data-dir", "{tmp}/bomb"],
                           "decompression bomb"),
}


def make_bad_files(tmp: Path) -> None:
    from PIL import Image

    def image(path: Path, size=(8, 8)) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros(size, np.uint8)).save(path)

    image(tmp / "empty" / "train" / "a" / "1.png")
    (tmp / "empty" / "train" / "b").mkdir(parents=True)
    image(tmp / "mixed" / "train" / "a" / "1.png")
    image(tmp / "mixed" / "train" / "b" / "2.png", (9, 8))
    image(tmp / "broken" / "train" / "a" / "1.png")
    image(tmp / "broken" / "train" / "b" / "2.png")
    (tmp / "broken" / "train" / "b" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    image(tmp / "truncated" / "train" / "a" / "1.png", (64, 64))
    image(tmp / "truncated" / "train" / "b" / "2.png", (64, 64))
    whole = np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)
    Image.fromarray(whole).save(tmp / "truncated" / "train" / "b" / "cut.png")
    data = (tmp / "truncated" / "train" / "b" / "cut.png").read_bytes()
    (tmp / "truncated" / "train" / "b" / "cut.png").write_bytes(data[:len(data) // 2])
    image(tmp / "bomb" / "train" / "a" / "1.png", (8, 8))
    image(tmp / "bomb" / "train" / "b" / "huge.png", (200, 200))
    rows = [[f"person {i}", i, i % 2] for i in range(60)]
    write_csv(tmp / "text.csv", ["name", "a", "y"], rows)
    write_csv(tmp / "nolabel.csv", ["a", "y"], [[1, 0], [2, ""], [3, 1]])
    write_csv(tmp / "hole.csv", ["a", "y"], [[1, 0], [2, 1], [None, 1], *[[i, i % 2] for i in range(20)]])
    (tmp / "pickled").mkdir()
    np.save(tmp / "pickled" / "x.npy", np.array([{"a": 1}] * 10, dtype=object), allow_pickle=True)
    np.save(tmp / "pickled" / "y.npy", np.zeros(10, np.int64))


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_inputs_are_one_line_and_write_nothing(case, tmp_path, monkeypatch):
    from PIL import Image

    make_bad_files(tmp_path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5_000)  # 200x200 is a bomb, 8x8 is not
    args, expected = BAD[case]
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = CliRunner().invoke(make_cli(), ["run", *args, "--out", str(tmp_path / "out")])
    assert result.exit_code in (1, 2), result.output
    assert "Traceback" not in result.output
    message = result.output.strip().splitlines()[-1]
    assert expected in message, message
    assert not (tmp_path / "out").exists()


def test_a_plugin_module_beside_the_user_loads_without_pythonpath(tmp_path, monkeypatch):
    (tmp_path / "my_digits.py").write_text(
        "from trainkit import hookimpl\n"
        "class Digits:\n"
        "    def load(self):\n"
        "        from sklearn.datasets import load_digits\n"
        "        import numpy as np\n"
        "        from trainkit.data import DatasetSplits\n"
        "        d = load_digits()\n"
        "        x = (d.images * 16).astype(np.uint8)\n"
        "        return DatasetSplits('digits', x[:1400], d.target[:1400], x[1400:],\n"
        "                             d.target[1400:], 10)\n"
        "@hookimpl\n"
        "def register_datasets(register):\n"
        "    register('digits', Digits)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    sys.modules.pop("my_digits", None)
    result = invoke(["-p", "my_digits", "run", "--dataset", "digits", "--epochs", "1",
                     "--no-plugin", "progress", "--out", "run"])
    assert result.exit_code == 0, result.output
    # predict needs no dataset file, nor the dataset plugin
    np.save(tmp_path / "x.npy", np.zeros((3, 8, 8), np.uint8))
    predicted = invoke(["predict", "run", "x.npy"])
    assert predicted.exit_code == 0, predicted.output
    assert predicted.output.count("\n") == 4  # the header and three rows


def test_the_documented_third_party_dataset_trains(tmp_path):
    """docs/plugins.md's worked dataset, read from the docs, registered as a plugin."""
    import re
    import types

    docs = (Path(__file__).parents[1] / "docs" / "plugins.md").read_text()
    source = re.search(r"```python\n(# trainkit_digits/__init__.py.*?)```", docs, re.S).group(1)
    module = types.ModuleType("trainkit_digits")
    exec(source, module.__dict__)
    result = invoke(["run", "--dataset", "digits", "--test-split", "0.25", "--epochs", "2",
                     "--no-plugin", "progress", "--out", str(tmp_path / "run")], plugins=[module])
    assert result.exit_code == 0, result.output
    assert "test_acc" in result.output


def test_a_table_with_categories_and_holes(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(200):
        colour = ["red", "green", "blue"][i % 3]
        size = rng.normal(3 if colour == "red" else 0)
        rows.append([colour, "" if i % 17 == 0 else f"{size:.3f}", int(colour == "red")])
    write_csv(tmp_path / "t.csv", ["colour", "size", "red"], rows)
    refused = CliRunner().invoke(make_cli(), ["run", "--dataset", "csv", "--data-file",
                                              str(tmp_path / "t.csv"), "--target", "red"])
    assert "column 'size' is missing" in refused.output and "--fill-missing" in refused.output
    run("--dataset", "csv", "--data-file", str(tmp_path / "t.csv"), "--target", "red",
        "--fill-missing", "mean", "--epochs", "40", "--lr", "0.01", "--out", str(tmp_path / "run"))
    model = trainkit.load(tmp_path / "run")
    columns = [c["name"] for c in model.preprocessing["columns"]]
    assert columns == ["colour", "size"] and model.task == "binary"
    write_csv(tmp_path / "new.csv", ["size", "colour"], [["0.1", "red"], ["-2", "blue"]])
    assert list(model.predict(tmp_path / "new.csv")) == [1, 0]  # by the colour's column
    write_csv(tmp_path / "unseen.csv", ["size", "colour"], [["0.1", "purple"]])
    with pytest.raises(trainkit.DataError, match="'purple', a category training never saw"):
        model.predict(tmp_path / "unseen.csv")
