"""The convnet from the command line: training, modes, exact resume with dropout and batch norm,
the sequential model, layer plugins, and one-line errors for impossible networks."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from trainkit import hookimpl
from trainkit.cli import EXIT_INTERRUPTED, make_cli
from trainkit.persist.checkpoint_io import load_checkpoint

from .test_resume import InterruptAt

SMALL = ["--model", "cnn", "--channels", "4,8", "--dense", "16", "--batch-size", "32",
         "--threads", "1"]


def run(synthetic_dir, *args, plugins=()):
    return CliRunner().invoke(make_cli(plugins), ["run", "--dataset", "idx", "--data-dir",
                                                  str(synthetic_dir), *args])


def test_the_convnet_trains_on_image_batches_and_keeps_its_state(synthetic_dir, tmp_path):
    result = run(synthetic_dir, *SMALL, "--batch-norm", "--epochs", "2", "--out", "run")
    assert result.exit_code == 0, result.output
    assert "Conv2d(1, 4, 5x5) -> BatchNorm(4) -> MaxPool2d(2)" in result.output
    manifest, arrays = load_checkpoint(tmp_path / "run" / "final.npz")
    assert arrays["model/0.weight"].shape == (5, 5, 1, 4)
    assert not np.allclose(arrays["model/1.running_mean"], 0)  # batch norm's statistics
    assert manifest["model_extra"]  # dropout's random generator
    assert manifest["history"][-1]["test_acc"] > 0.5


def same_checkpoints(a, b) -> None:
    (manifest_a, arrays_a), (manifest_b, arrays_b) = load_checkpoint(a), load_checkpoint(b)
    assert sorted(arrays_a) == sorted(arrays_b)
    for name in arrays_a:
        np.testing.assert_array_equal(arrays_a[name], arrays_b[name], err_msg=name)
    for key in ("history", "model_extra", "state", "optimizer"):
        assert manifest_a[key] == manifest_b[key], key


@pytest.mark.parametrize("threads", ["1", "2"])
def test_resume_with_dropout_and_batch_norm_is_bit_exact(synthetic_dir, tmp_path, threads):
    # on two threads the batch is split: the layers' parts run together, the optimizer too
    args = [*SMALL[:-1], threads, "--batch-norm", "--dropout", "0.3", "--epochs", "3"]
    whole = run(synthetic_dir, *args, "--out", "whole")
    assert whole.exit_code == 0, whole.output
    if threads == "2":
        assert "2 threads, each on part of the batch" in whole.output
    # stopped at an epoch end, then resumed
    assert run(synthetic_dir, *args[:-1], "1", "--out", "split").exit_code == 0
    resumed = run(synthetic_dir, "--resume", "split", "--epochs", "3")
    assert resumed.exit_code == 0, resumed.output
    same_checkpoints(tmp_path / "whole" / "last.npz", tmp_path / "split" / "last.npz")
    # Ctrl+C in the middle of epoch 2, then resumed from the emergency checkpoint
    stopped = run(synthetic_dir, *args, "--out", "ctrl-c", plugins=[InterruptAt(20)])
    assert stopped.exit_code == EXIT_INTERRUPTED, stopped.output
    assert load_checkpoint(tmp_path / "ctrl-c" / "emergency.npz")[0]["state"]["step_in_epoch"]
    resumed = run(synthetic_dir, "--resume", "ctrl-c")
    assert resumed.exit_code == 0, resumed.output
    same_checkpoints(tmp_path / "whole" / "last.npz", tmp_path / "ctrl-c" / "last.npz")


def test_validation_and_evaluate_run_in_eval_mode(synthetic_dir, tmp_path):
    result = run(synthetic_dir, *SMALL, "--dropout", "0.9", "--epochs", "1", "--out", "run")
    assert result.exit_code == 0, result.output
    manifest, _ = load_checkpoint(tmp_path / "run" / "final.npz")
    scored = manifest["history"][-1]["test_loss"]
    again = [CliRunner().invoke(make_cli(), ["evaluate", "run", "--data-dir", str(synthetic_dir)])
             for _ in range(2)]
    assert again[0].output.split("test_loss: ")[1][:6] == f"{scored:.4f}"
    assert again[0].output == again[1].output  # no dropout mask was drawn


SEQUENTIAL = """
model = "sequential"
layers = [{type = "conv2d", channels = 4, kernel = 3}, {type = "max-pool", size = 2}, "relu",
          "flatten", {type = "dense", units = 16}, "relu", {type = "dropout", rate = 0.2},
          {type = "dense", units = 10}]
"""


def test_a_sequential_model_from_a_config_file_trains(synthetic_dir, tmp_path):
    (tmp_path / "net.toml").write_text(SEQUENTIAL)
    result = run(synthetic_dir, "--config", "net.toml", "--epochs", "1", "--out", "run")
    assert result.exit_code == 0, result.output
    assert "Conv2d(1, 4, 3x3) -> MaxPool2d(2) -> ReLU -> Flatten -> Linear(676, 16)" in result.output
    printed = run(synthetic_dir, "--config", "net.toml", "--print-config").output
    (tmp_path / "again.toml").write_text(printed)
    again = run(synthetic_dir, "--config", "again.toml", "--print-config")
    assert again.exit_code == 0 and again.output == printed  # the layer list round-trips


class Scale:
    """A third-party layer: multiplies by a constant."""

    def __init__(self, factor):
        from trainkit.nn import Module

        self.module = type("ScaleModule", (Module,), {
            "forward": lambda self, x: x * factor,
            "backward": lambda self, g: g * factor,
            "describe": lambda self: f"Scale({factor})",
        })()


class LayerPlugin:
    @hookimpl
    def register_layers(self, register):
        def scale(input_shape, rng, factor: float = 2.0):
            """Multiply by a constant.

            Args:
                factor: the constant.
            """
            return Scale(factor).module

        register("scale", scale)


def test_a_plugin_registers_a_layer_type_for_the_sequential_model(synthetic_dir, tmp_path):
    (tmp_path / "net.toml").write_text(
        'model = "sequential"\nlayers = ["flatten", {type = "scale", factor = 0.5}, '
        '{type = "dense", units = 10}]\n')
    result = run(synthetic_dir, "--config", "net.toml", "--epochs", "1", "--out", "run",
                 plugins=[LayerPlugin()])
    assert result.exit_code == 0, result.output
    assert "Flatten -> Scale(0.5) -> Linear(784, 10)" in result.output
    listing = CliRunner().invoke(make_cli([LayerPlugin()]), ["plugins"]).output
    assert any(line.split()[:2] == ["layer", "scale"] for line in listing.splitlines())


@pytest.mark.parametrize("args,layers,needle", [
    (["--kernel", "30"], None, "layer 1 (Conv2d(1, 32, 30x30)): kernel 30x30 is larger than its "
                               "28x28 (padded) input"),
    (["--channels", "8,8,8", "--kernel", "4", "--no-batch-norm"], None,
     "layer 8 (MaxPool2d(2)): a 2x2 window leaves nothing of its 1x1 input"),
    ([], '[{type = "conv2d", channels = 4}, {type = "dense", units = 10}]',
     "layer 2 (dense): needs flat input (features), got 26x26x4; put a flatten before it"),
    ([], '["flatten", {type = "dense", units = 7}]', "the last layer gives 7 outputs per sample; "
                                                     "the dataset has 10 classes"),
    ([], '["flatten", {type = "dense3d"}]', "layer 2: unknown layer type 'dense3d'; known: "),
    ([], '["flatten", {type = "dense", unit = 10}]', "layer 2 (dense): unknown option 'unit'; it "
                                                     "has: units, init"),
    ([], '["flatten", {type = "dense", units = "ten"}]', "layer 2 (dense) units: 'ten' is invalid"),
    ([], '[3]', "layer 1: 3 is not a layer type or a table with a type"),
    ([], '[{type = "conv2d", channels = 4, stride = 2, algorithm = "winograd"}]',
     "layer 1 (conv2d): a Winograd convolution needs stride 1 and an odd kernel"),
    ([], '[{type = "max-pool", size = 3}, {type = "conv2d", channels = 4, kernel = 3, '
         'algorithm = "winograd"}]',
     "layer 2 (conv2d): a Winograd convolution needs an even output size, got 7x7"),
])
def test_impossible_networks_are_one_line_errors_naming_the_layer(synthetic_dir, tmp_path, args,
                                                                  layers, needle):
    if layers is not None:
        (tmp_path / "net.toml").write_text(f'model = "sequential"\nlayers = {layers}\n')
        args = ["--config", "net.toml"]
    else:
        args = ["--model", "cnn", *args]
    result = run(synthetic_dir, *args, "--out", "run")
    assert result.exit_code == 2, result.output
    assert needle in " ".join(result.output.split())
    assert "Traceback" not in result.output and not (tmp_path / "run").exists()


def test_the_cnn_needs_images(tmp_path):
    from trainkit.data import write_idx

    folder = tmp_path / "flat"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 40), ("t10k", 10)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz",
                  rng.integers(0, 255, (n, 30)).astype(np.uint8))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 3, n).astype(np.uint8))
    result = run(folder, "--model", "cnn", "--out", "run")
    assert result.exit_code == 2
    assert "model cnn needs image samples (height, width, channels); the dataset gives (30,)" \
        in " ".join(result.output.split())


def test_the_cnn_trains_with_a_cosine_lr_schedule_unless_it_is_turned_off(synthetic_dir,
                                                                          tmp_path):
    def lrs(*args):
        result = run(synthetic_dir, "--epochs", "2", *args)
        assert result.exit_code == 0, result.output
        history = load_checkpoint(tmp_path / args[-1] / "final.npz")[0]["history"]
        return [epoch["lr"] for epoch in history]

    assert lrs(*SMALL, "--out", "cnn") == pytest.approx([1e-3, 5e-4])  # down a cosine
    assert lrs(*SMALL, "--no-plugin", "lr-schedule", "--out", "constant") == pytest.approx(
        [1e-3, 1e-3])
    assert lrs("--out", "mlp") == pytest.approx([1e-3, 1e-3])  # other models keep the lr
