"""Models that leave trainkit: the summary, trainkit.load, ONNX checked by ONNX Runtime, and
safetensors read back by its own loader. Small models trained for a few batches of the real
MNIST; the full test sets' figures are in the README."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import trainkit
from trainkit.cli import make_cli

SEQUENTIAL = """
model = "sequential"
layers = [{type = "conv2d", channels = 6, kernel = 3, stride = 2, padding = 1},
          "batch-norm", "relu", {type = "avg-pool"},
          {type = "conv2d", channels = 8, kernel = 3, padding = 1}, {type = "max-pool"},
          "tanh", "flatten", {type = "dropout", rate = 0.2},
          {type = "dense", units = 16}, "batch-norm", "sigmoid", {type = "dense", units = 10}]
"""

MODELS = {
    "mlp": ["--model", "mlp"],
    "cnn": ["--model", "cnn"],  # the default convnet, whole
    "sequential": ["--config", "sequential.toml"],
}


def invoke(args, plugins=()):
    return CliRunner().invoke(make_cli(plugins), args, catch_exceptions=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, mnist_dir_once):
    """A run folder per model, trained for 20 batches of the real MNIST."""
    mnist = mnist_dir_once
    root = tmp_path_factory.mktemp("trained")
    (root / "sequential.toml").write_text(SEQUENTIAL)
    folders = {}
    for name, args in MODELS.items():
        args = [a.replace("sequential.toml", str(root / "sequential.toml")) for a in args]
        result = invoke(["run", "--data-dir", str(mnist), "--epochs", "1", "--limit-batches",
                         "20", "--val-split", "0.02", "--no-plugin", "progress", "--out",
                         str(root / name), *args])
        assert result.exit_code == 0, result.output
        folders[name] = root / name
    return folders


@pytest.fixture(scope="module")
def test_images(mnist_dir_once):
    from trainkit.data import read_idx

    return read_idx(mnist_dir_once / "t10k-images-idx3-ubyte.gz")[:1000]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_onnx_runtime_gives_what_trainkit_predict_gives(name, trained, test_images, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    np.save(tmp_path / "images.npy", test_images)
    result = invoke(["export", str(trained[name]), "--format", "onnx", "-o",
                     str(tmp_path / "model.onnx"), "--probabilities"])
    assert result.exit_code == 0, result.output
    predicted = invoke(["predict", str(trained[name]), str(tmp_path / "images.npy"),
                        "--probabilities", "-o", str(tmp_path / "probabilities.npy")])
    assert predicted.exit_code == 0, predicted.output
    session = ort.InferenceSession(str(tmp_path / "model.onnx"))
    logits, probabilities = session.run(None, {"input": test_images})
    ours = trainkit.load(trained[name])
    np.testing.assert_allclose(logits, ours.logits(test_images), atol=1e-4, rtol=0)
    np.testing.assert_allclose(probabilities, np.load(tmp_path / "probabilities.npy"),
                               atol=1e-4, rtol=0)
    assert (logits.argmax(axis=1) == ours.predict(test_images)).all()


def test_the_onnx_model_says_what_it_takes_and_knows_its_classes(trained, tmp_path):
    onnx = pytest.importorskip("onnx")
    trainkit.load(trained["cnn"]).export(tmp_path / "m.onnx")
    model = onnx.load(str(tmp_path / "m.onnx"))
    onnx.checker.check_model(model, full_check=True)
    assert model.ir_version == 8  # what every ONNX Runtime since 1.14 reads (opset 17's)
    (source,) = model.graph.input
    assert source.name == "input"
    assert source.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    dims = [d.dim_param or d.dim_value for d in source.type.tensor_type.shape.dim]
    assert dims == ["N", 28, 28]  # a dynamic batch of MNIST's images
    assert "divided by 255" in source.doc_string
    props = {p.key: p.value for p in model.metadata_props}
    assert json.loads(props["class_names"]) == [str(i) for i in range(10)]
    assert json.loads(props["trainkit_config"])["model"] == "cnn"
    assert [o.name for o in model.graph.output] == ["logits"]


def test_float_input_takes_scaled_images(trained, test_images, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    ours = trainkit.load(trained["mlp"])
    ours.export(tmp_path / "m.onnx", float_input=True)
    scaled = test_images[:50].astype(np.float32) / np.float32(255)
    (logits,) = ort.InferenceSession(str(tmp_path / "m.onnx")).run(None, {"input": scaled})
    np.testing.assert_allclose(logits, ours.logits(scaled), atol=1e-4, rtol=0)


def test_safetensors_holds_the_state_dict_and_the_config(trained, tmp_path):
    pytest.importorskip("safetensors")
    from safetensors import safe_open
    from safetensors.numpy import load_file

    result = invoke(["export", str(trained["cnn"]), "-f", "safetensors", "-o",
                     str(tmp_path / "cnn.safetensors")])
    assert result.exit_code == 0, result.output
    tensors = load_file(str(tmp_path / "cnn.safetensors"))
    state = trainkit.load(trained["cnn"]).model.state_dict()
    assert tensors.keys() == state.keys()
    for key, value in state.items():
        np.testing.assert_array_equal(tensors[key], value, err_msg=key)
    with safe_open(str(tmp_path / "cnn.safetensors"), "np") as f:
        meta = f.metadata()
    assert json.loads(meta["trainkit_config"])["model"] == "cnn"
    assert "channels-last" in meta["layouts"]


def test_the_convnet_rebuilt_in_pytorch_from_safetensors_agrees(trained, test_images, tmp_path):
    """examples/torch_from_safetensors.py: the documented command, run where torch is."""
    pytest.importorskip("torch", reason="PyTorch is not installed here (it is never a trainkit "
                                        "dependency): the example cannot be run")
    pytest.importorskip("safetensors")
    import subprocess

    example = Path(__file__).parents[1] / "examples" / "torch_from_safetensors.py"
    trainkit.load(trained["cnn"]).export(tmp_path / "cnn.safetensors", "safetensors")
    np.save(tmp_path / "images.npy", test_images)
    done = subprocess.run([sys.executable, str(example), str(tmp_path / "cnn.safetensors"),
                           str(tmp_path / "images.npy"), "--out", str(tmp_path / "torch.npy")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    ours = trainkit.load(trained["cnn"]).logits(test_images)
    np.testing.assert_allclose(np.load(tmp_path / "torch.npy"), ours, atol=1e-4, rtol=0)


def test_load_predicts_like_the_cli_and_checks_inputs_the_same_way(trained, test_images):
    model = trainkit.load(trained["mlp"])
    assert model.class_names == [str(i) for i in range(10)]
    assert model.input_shape == (28, 28)
    classes = model.predict(test_images[:20])
    probabilities = model.predict_proba(test_images[:20])
    assert classes.shape == (20,) and probabilities.shape == (20, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    assert (probabilities.argmax(axis=1) == classes).all()
    # the same inputs as floats in [0, 1] give the same classes; unscaled floats are refused
    np.testing.assert_array_equal(model.predict(test_images[:20] / np.float32(255)), classes)
    with pytest.raises(trainkit.DataError, match=r"range over \[0, 255\]"):
        model.predict(test_images[:20].astype(np.float32))
    with pytest.raises(trainkit.DataError, match="shape"):
        model.predict(np.zeros((2, 27, 27), np.uint8))


def test_load_last_takes_the_newest_run(trained, tmp_path):
    import shutil

    shutil.copytree(trained["mlp"], tmp_path / "runs" / "mlp")  # the test runs in tmp_path
    assert trainkit.load("last").class_names == [str(i) for i in range(10)]


def test_the_summarys_parameters_are_the_checkpoints_values(trained):
    from trainkit.persist.checkpoint_io import load_checkpoint

    for name, folder in trained.items():
        summary = trainkit.load(folder).summary()
        _, arrays = load_checkpoint(folder / "final.npz")
        model_values = sum(a.size for key, a in arrays.items() if key.startswith("model/"))
        assert summary.parameters == model_values, name


def test_the_default_convnets_multiply_adds_counted_by_hand():
    from trainkit.plugins.models import CNN

    model = CNN().build(784, 10, np.random.default_rng(0), input_shape=(28, 28, 1))
    summary = model.summary()
    by_hand = (24 * 24 * 5 * 5 * 1 * 32  # conv 1: every output pixel, a 5x5x1 patch, 32 filters
               + 24 * 24 * 32            # its batch norm: a multiply-add per value
               + 8 * 8 * 5 * 5 * 32 * 64  # conv 2 on the 12x12x32 pooled map
               + 8 * 8 * 64
               + 1024 * 128 + 128         # dense 1 and its batch norm
               + 128 * 10)                # the classifier
    assert summary.multiply_adds == by_hand
    assert summary.parameters == model.params.size + model.states.size
    assert [row.output_shape for row in summary.rows][:3] == [(24, 24, 32), (24, 24, 32),
                                                               (12, 12, 32)]
    assert summary.activation_bytes == 4 * 64 * sum(math.prod(r.output_shape)
                                                    for r in summary.rows)


def test_summary_takes_runs_options_or_a_run_folder(synthetic_dir, trained):
    result = invoke(["summary", "--dataset", "idx", "--data-dir", str(synthetic_dir), "--model",
                     "cnn", "--channels", "4,8", "--batch-size", "32"])
    assert result.exit_code == 0, result.output
    assert "Conv2d(1, 4, 5x5)" in result.output and "activations (batch 32)" in result.output
    assert not Path("runs").exists()  # no run folder (the test runs in its own folder)
    folder = invoke(["summary", str(trained["sequential"])])
    assert folder.exit_code == 0, folder.output
    assert "Conv2d(1, 6, 3x3, stride=2, padding=1)" in folder.output
    assert "AvgPool2d(2)" in folder.output


def test_a_plugin_layer_exports_through_its_to_onnx_or_is_named(tmp_path, trained):
    pytest.importorskip("onnx")
    from trainkit.errors import ExportError
    from trainkit.nn import Module

    class Halve(Module):
        def forward(self, x):
            return x * np.float32(0.5)

        def backward(self, grad_output):
            return grad_output * np.float32(0.5)

    class HalveForOnnx(Halve):
        def to_onnx(self, graph, x):
            return graph.node("Mul", [x, graph.constant("half", np.float32(0.5))])

    model = trainkit.load(trained["mlp"])
    model.model.layers.insert(1, HalveForOnnx())
    model.export(tmp_path / "ok.onnx")
    halved = model.logits(np.zeros((1, 28, 28), np.uint8))
    assert np.isfinite(halved).all()
    model.model.layers[1] = Halve()
    row = model.summary().rows[1]  # a layer that says nothing of itself: shape, parameters
    assert (row.description, row.output_shape, row.parameters, row.multiply_adds) == \
        ("Halve", (100,), 0, None)  # after the hidden layer
    with pytest.raises(ExportError, match=r"layer 2 \(Halve\) cannot be exported to ONNX"):
        model.export(tmp_path / "no.onnx")
    assert not (tmp_path / "no.onnx").exists()


@pytest.mark.parametrize("case", ["no model", "unknown format", "missing folder", "no extra"])
def test_bad_exports_are_one_line_and_write_nothing(case, trained, tmp_path, monkeypatch):
    target = tmp_path / "out" / "model.onnx"
    target.parent.mkdir()
    args = ["export", str(trained["mlp"]), "-o", str(target)]
    if case == "no model":
        (tmp_path / "empty").mkdir()
        args[1] = str(tmp_path / "empty")
    elif case == "unknown format":
        args += ["--format", "tflite"]
    elif case == "missing folder":
        target = tmp_path / "nowhere" / "model.onnx"
        args[-1] = str(target)
    else:
        monkeypatch.setitem(sys.modules, "onnx", None)  # as if trainkit[onnx] were not installed
    result = CliRunner().invoke(make_cli(), args)
    assert result.exit_code in (1, 2)
    assert "Traceback" not in result.output and result.exception is None or \
        isinstance(result.exception, SystemExit)
    message = result.output.strip().splitlines()[-1]
    expected = {"no model": "empty", "unknown format": "tflite", "missing folder": "nowhere",
                "no extra": "trainkit[onnx]"}[case]
    assert expected in message
    assert not list(tmp_path.rglob("*.onnx"))


def test_verbose_shows_the_summary_when_training_starts(synthetic_dir):
    result = invoke(["-v", "run", "--dataset", "idx", "--data-dir", str(synthetic_dir),
                     "--epochs", "1", "--limit-batches", "2", "--out", "out"])
    assert result.exit_code == 0, result.output
    assert "multiply-adds per sample: 79,400" in result.output


def test_the_documented_plugin_layer_exports_as_documented(trained, test_images, tmp_path):
    """docs/plugins.md's Scale layer, read from the docs, in a convnet: ONNX Runtime agrees."""
    import re
    import textwrap

    from trainkit.nn import Module, Parameter

    ort = pytest.importorskip("onnxruntime")
    docs = (Path(__file__).parents[1] / "docs" / "plugins.md").read_text()
    source = re.search(r"```python\n(\s*class Scale\(Module\):.*?)```", docs, re.S).group(1)
    namespace = {"np": np, "math": math, "Module": Module, "Parameter": Parameter}
    exec(textwrap.dedent(source), namespace)
    scale = namespace["Scale"](32)
    scale.factor.data[:] = np.linspace(0.5, 1.5, 32, dtype=np.float32)
    model = trainkit.load(trained["cnn"])
    model.model.layers.insert(2, scale)  # after the first batch norm: channels-first in ONNX
    assert "Scale" in model.summary().table()
    model.export(tmp_path / "scaled.onnx")
    session = ort.InferenceSession(str(tmp_path / "scaled.onnx"))
    (logits,) = session.run(["logits"], {"input": test_images[:200]})
    np.testing.assert_allclose(logits, model.logits(test_images[:200]), atol=1e-4, rtol=0)
