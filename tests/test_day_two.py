"""The techniques of the second day that are in: gradient clipping, a wall-clock limit, and
the breadth (weight decay, RMSprop, label smoothing, class weights) through the CLI."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner

from trainkit.cli import make_cli


def invoke(args):
    return CliRunner().invoke(make_cli(), args, catch_exceptions=False)


def quick(data_dir, out, *extra):
    return ["run", "--dataset", "idx", "--data-dir", str(data_dir), "--no-plugin", "progress",
            "--out", str(out), *extra]


def assert_same_training(one, other) -> None:
    """The final model and optimizer of two run folders, bit for bit."""
    from trainkit.persist.checkpoint_io import load_checkpoint

    a = load_checkpoint(one / "final.npz")[1]
    b = load_checkpoint(other / "final.npz")[1]
    for key in a:
        if key.startswith(("model/", "optimizer/")):
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def clipped(clip: str, maximum: float, grads: np.ndarray) -> np.ndarray:
    from trainkit.plugins.grad_clip import GradClip

    plugin = GradClip(clip, maximum)
    trainer = SimpleNamespace(model=SimpleNamespace(grads=grads.copy()))
    plugin.on_before_optimizer_step(trainer)
    return trainer.model.grads


def test_norm_clipping_is_pytorchs_clip_grad_norm():
    grads = np.random.default_rng(0).normal(size=300).astype(np.float32)
    norm = float(np.sqrt(np.sum(grads.astype(np.float64) ** 2)))
    # clip_grad_norm_: scale by max / (norm + 1e-6) when that is below 1, else leave them
    np.testing.assert_allclose(clipped("norm", 1.0, grads), grads * (1.0 / (norm + 1e-6)),
                               rtol=1e-6)
    np.testing.assert_array_equal(clipped("norm", 2 * norm, grads), grads)
    np.testing.assert_array_equal(clipped("value", 0.5, grads), np.clip(grads, -0.5, 0.5))


def test_grad_clip_logs_the_norm_before_clipping(synthetic_dir, tmp_path):
    from trainkit.persist.checkpoint_io import load_checkpoint

    result = invoke(quick(synthetic_dir, tmp_path / "run", "--epochs", "2", "--plugin",
                          "grad-clip", "--grad-clip-max", "0.1"))
    assert result.exit_code == 0, result.output
    history = load_checkpoint(tmp_path / "run" / "final.npz")[0]["history"]
    assert all(row["grad_norm"] > 0.1 for row in history)  # logged before clipping
    assert "grad_norm" in result.output


def test_max_time_stops_cleanly_and_a_resume_ends_where_one_run_does(synthetic_dir, tmp_path):
    from trainkit.persist.checkpoint_io import load_checkpoint

    whole = invoke(quick(synthetic_dir, tmp_path / "whole", "--epochs", "3"))
    assert whole.exit_code == 0, whole.output
    cut = invoke(quick(synthetic_dir, tmp_path / "cut", "--epochs", "3", "--max-time",
                       "0.001"))
    assert cut.exit_code == 0, cut.output
    assert "max-time after epoch 0" in cut.output and "--resume continues there" in cut.output
    manifest = load_checkpoint(tmp_path / "cut" / "last.npz")[0]
    assert manifest["epoch"] == 0 and manifest["global_step"] >= 1  # in the first epoch
    resumed = invoke(["run", "--resume", str(tmp_path / "cut"), "--max-time", "01:00:00",
                      "--dataset", "idx", "--data-dir", str(synthetic_dir)])
    assert resumed.exit_code == 0, resumed.output
    assert_same_training(tmp_path / "whole", tmp_path / "cut")


@pytest.mark.parametrize("bad", ["10 minutes", "0", "-5"])
def test_a_bad_max_time_is_one_line(bad, synthetic_dir, tmp_path):
    result = CliRunner().invoke(make_cli(), quick(synthetic_dir, tmp_path / "r", "--max-time",
                                                  bad))
    assert result.exit_code == 2 and "max_time must be HH:MM:SS" in result.output


@pytest.mark.parametrize("args", [
    ["--optimizer", "sgd", "--weight-decay", "0.01"],
    ["--optimizer", "rmsprop", "--lr", "0.001", "--weight-decay", "0.001"],
    ["--label-smoothing", "0.1", "--class-weights", ",".join(["1"] * 9 + ["2"])],
])
def test_the_breadth_from_the_command_line(args, synthetic_dir, tmp_path):
    result = invoke(quick(synthetic_dir, tmp_path / "run", "--epochs", "2", "--lr", "0.01",
                          *args))
    assert result.exit_code == 0, result.output
    assert "test_acc" in result.output


def test_ema_is_timms_update_with_its_warm_up():
    from trainkit.plugins.ema import EMA

    rng = np.random.default_rng(0)
    model = SimpleNamespace(params=rng.normal(size=20).astype(np.float32),
                            states=rng.normal(size=4).astype(np.float32))
    trainer = SimpleNamespace(model=model, optimizer_stepped=True)
    ema = EMA(decay=0.99, power=0.75)
    ema.on_fit_start(trainer)
    expected = np.concatenate([model.params, model.states]).astype(np.float64)
    for step in range(1, 30):
        model.params += rng.normal(size=20).astype(np.float32)
        model.states += rng.normal(size=4).astype(np.float32)
        ema.on_batch_end(trainer)
        decay = min(0.99, 1 - (1 + step) ** -0.75)  # timm ModelEmaV3.get_decay, warm-up on
        expected = decay * expected + (1 - decay) * np.concatenate([model.params, model.states])
    np.testing.assert_allclose(ema.average, expected, rtol=1e-5, atol=1e-6)


def test_ema_scores_and_saves_the_average_and_resumes_the_training_weights(synthetic_dir,
                                                                           tmp_path):
    import json

    from trainkit.persist.checkpoint_io import load_checkpoint
    from trainkit.plugins.ema import EMA
    from trainkit.testing import check_plugin

    result = invoke(quick(synthetic_dir, tmp_path / "run", "--epochs", "2", "--plugin", "ema"))
    assert result.exit_code == 0, result.output
    manifest, arrays = load_checkpoint(tmp_path / "run" / "final.npz")
    held = arrays["plugins/ema/other"]  # the training weights, kept for a resume
    weights = np.concatenate([arrays[k].ravel() for k in sorted(arrays) if k.startswith("model/")])
    assert weights.size == held.size and not np.allclose(np.sort(weights), np.sort(held))
    report = json.loads(invoke(["evaluate", str(tmp_path / "run"), "--json"]).output)
    run_test_acc = manifest["history"][-1]["test_acc"]
    assert report["metrics"]["acc"] == pytest.approx(run_test_acc, abs=1e-12)  # the average
    # Ctrl+C mid-epoch and a resume: the same weights as one run (the averaged ones saved)
    (tmp_path / "check").mkdir()
    check_plugin(EMA, name="ema", ddp=False, folder=tmp_path / "check",
                 options={"decay": 0.9, "warmup": False, "power": 0.5, "evaluate": True})


class FixedDraws:
    """A generator stand-in: every image chosen, the given shift, nothing else."""

    def __init__(self, dy: float, dx: float) -> None:
        self.dy, self.dx = dy, dx

    def random(self, n):
        return np.zeros(n)

    def uniform(self, low, high, size):
        if size == 2 or (isinstance(size, tuple) and size[0] == 2):
            n = size[1]
            return np.array([[self.dy] * n, [self.dx] * n]) / np.array([[28], [28]])
        return np.full(size, (low + high) / 2)  # no rotation (0), no scaling (1)


def test_augment_moves_images_by_the_drawn_amounts():
    from trainkit.plugins.augment import transform

    image = np.zeros((1, 28, 28, 1), np.float32)
    image[0, 10:14, 8:12] = 1.0
    moved = image.copy()
    transform(moved, FixedDraws(2, -3), 1.0, 0.2, 10.0, 0.1)
    np.testing.assert_allclose(moved[0, 12:16, 5:9], 1.0, atol=1e-6)  # 2 down, 3 left
    assert abs(moved.sum() - image.sum()) < 1e-4


def test_augment_nearest_moves_images_by_whole_pixels_and_keeps_them_sharp():
    # Keras' interpolation="nearest": with no rotation or scaling, a pad-and-crop shift
    from trainkit.plugins.augment import transform

    image = np.random.default_rng(1).random((1, 28, 28, 1), dtype=np.float32)
    moved, smooth = image.copy(), image.copy()
    transform(moved, FixedDraws(2.4, -3.4), 1.0, 0.2, 10.0, 0.1, interpolation="nearest")
    transform(smooth, FixedDraws(2.4, -3.4), 1.0, 0.2, 10.0, 0.1)
    np.testing.assert_array_equal(moved[0, 2:, :25], image[0, :26, 3:])  # 2 down, 3 left
    assert not moved[0, :2].any() and not moved[0, :, 25:].any()  # zero where nothing was
    assert not np.isin(smooth[0, 2:, :25], image).all()  # bilinear blends neighbours


def test_augment_flips_the_chosen_images_left_to_right_and_only_those():
    from trainkit.plugins.augment import mirror

    images = np.arange(6 * 4 * 5, dtype=np.float32).reshape(6, 4, 5)
    chosen = np.random.default_rng(3).random(6) < 0.5
    flipped = images.copy()
    mirror(flipped, np.random.default_rng(3), 0.5)
    assert 0 < chosen.sum() < 6
    np.testing.assert_array_equal(flipped[chosen], images[chosen][:, :, ::-1])
    np.testing.assert_array_equal(flipped[~chosen], images[~chosen])


def test_augment_of_a_batchs_parts_equals_augment_of_the_whole_batch():
    # as ddp's ranks each hold a part of the global batch: the draws are the global batch's
    from trainkit.plugins.augment import erase, mirror, transform

    images = np.random.default_rng(0).random((10, 8, 8, 1), dtype=np.float32)

    def augmented(images, part):
        images, rng = images.copy(), np.random.default_rng(7)
        transform(images, rng, 0.7, 0.2, 20.0, 0.2, part)
        erase(images, rng, 0.5, part)
        mirror(images, rng, 0.5, part)
        return images

    whole = augmented(images, None)
    parts = [augmented(images[:4], (0, 10)), augmented(images[4:], (4, 10))]
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    assert not np.array_equal(whole, images)


def test_augment_is_the_same_over_threads_and_with_its_workspace_reused():
    # large enough images are warped over the run's threads, and each thread reuses its
    # scratch arrays from batch to batch (batches of other sizes too): neither changes a bit
    from trainkit.nn.schedule import planned
    from trainkit.plugins.augment import Workspace, transform

    rng = np.random.default_rng(2)
    batches = [rng.random((n, 32, 32, 3), dtype=np.float32) for n in (64, 64, 21, 40)]

    def augmented(threads, workspace, interpolation):
        out = []
        with planned(threads, split_batch=True):
            for step, images in enumerate(batches):
                images = images.copy()
                transform(images, np.random.default_rng(step), 0.8, 0.2, 20.0, 0.2, None,
                          interpolation, workspace)
                out.append(images)
        return out

    for interpolation in ("bilinear", "nearest"):
        alone = augmented(1, None, interpolation)
        for threads in (1, 2, 3):
            for got, want in zip(augmented(threads, Workspace(), interpolation), alone):
                np.testing.assert_array_equal(got, want)
    assert not np.array_equal(alone[0], batches[0])


def test_augment_draws_from_the_seed_and_step_and_leaves_evaluation_alone(synthetic_dir,
                                                                          tmp_path):
    from trainkit.plugins.augment import Augment
    from trainkit.testing import check_plugin

    (tmp_path / "check").mkdir()
    # an interrupted run and its resume end with the same weights as one run: the draws
    # depend on the seed and the global step only
    check_plugin(Augment, name="augment", ddp=False, folder=tmp_path / "check",
                 options={"probability": 0.8, "shift": 0.2, "rotate": 20.0, "scale": 0.2,
                          "erase": 0.5, "flip": 0.5})
    plain = invoke(quick(synthetic_dir, tmp_path / "plain", "--epochs", "1"))
    moved = invoke(quick(synthetic_dir, tmp_path / "moved", "--epochs", "1", "--plugin",
                         "augment", "--augment-erase", "0.5"))
    assert plain.exit_code == moved.exit_code == 0
    assert plain.output != moved.output  # the training batches were changed
    import json

    from trainkit.persist.checkpoint_io import load_checkpoint

    # the run's test score is what evaluate (which runs no plugin) gives: test images untouched
    report = json.loads(invoke(["evaluate", str(tmp_path / "moved"), "--json"]).output)
    logged = load_checkpoint(tmp_path / "moved" / "final.npz")[0]["history"][-1]["test_acc"]
    assert report["metrics"]["acc"] == pytest.approx(logged, abs=1e-12)


def test_swa_is_averaged_models_equal_average_and_update_bns_statistics():
    from trainkit.data import DataLoader
    from trainkit.nn import BatchNorm, Linear, Sequential
    from trainkit.plugins.swa import SWA, update_bn

    rng = np.random.default_rng(0)
    model = Sequential(Linear(4, 3, rng), BatchNorm(3))
    trainer = SimpleNamespace(model=model, optimizer=SimpleNamespace(lr=0.1))
    swa = SWA(start=2, lr=0.01)
    seen = []
    for epoch in range(1, 6):
        swa.on_epoch_start(trainer, epoch)
        model.params[...] = rng.normal(size=model.params.size)
        if epoch >= 2:
            seen.append(model.params.copy())
        swa.on_epoch_end(trainer, epoch)
    assert trainer.optimizer.lr == 0.01
    np.testing.assert_allclose(swa.average, np.mean(seen, axis=0), rtol=1e-5, atol=1e-6)
    # update_bn: the cumulative mean of the batches' statistics, each batch weighing the same
    x = rng.normal(size=(40, 4)).astype(np.float32)
    update_bn(model, DataLoader(x, np.zeros(40, np.intp), 10))
    h = x @ model.layers[0].weight.data + model.layers[0].bias.data
    batches = h.reshape(4, 10, 3)
    np.testing.assert_allclose(model.layers[1].running_mean, batches.mean(axis=1).mean(axis=0),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.layers[1].running_var,
                               batches.var(axis=1, ddof=1).mean(axis=0), rtol=1e-4)
    assert model.layers[1].momentum == np.float32(0.1)  # put back


def test_lr_find_suggests_the_valley_and_writes_the_curve(synthetic_dir, tmp_path):
    import csv
    from pathlib import Path

    from trainkit.session.lr_find import LrCurve, steepest, valley

    result = invoke(["lr-find", "--dataset", "idx", "--data-dir", str(synthetic_dir),
                     "--sweep-steps", "60", "--out", str(tmp_path / "sweep")])
    assert result.exit_code == 0, result.output
    assert "suggested lr" in result.output and "train with --lr" in result.output
    assert "steepest descent" in result.output
    rows = list(csv.DictReader((tmp_path / "sweep" / "lr_find.csv").open()))
    assert 10 < len(rows) <= 60 and float(rows[1]["lr"]) > float(rows[0]["lr"])
    assert (tmp_path / "sweep" / "lr_find.png").exists()
    assert not Path("runs").exists()  # no run
    # fastai's valley: two thirds down the longest falling stretch (steps 30 to 60 here);
    # Lightning's steepest descent: where it falls fastest (into step 45)
    curve = LrCurve(lrs=[10.0 ** (k / 20) for k in range(-120, 1)])
    curve.smoothed = [2.0 - 0.01 * max(0, min(k, 60) - 30) - (0.2 if 45 <= k <= 60 else 0)
                      for k in range(121)]
    assert valley(curve) == curve.lrs[29 + 10 + 5]  # fastai counts from the point before
    assert steepest(curve) in (curve.lrs[44], curve.lrs[45])


def test_ctrl_c_in_lr_find_is_one_line_and_exit_130(synthetic_dir, tmp_path, monkeypatch):
    import trainkit.session.lr_find
    from trainkit.cli import EXIT_INTERRUPTED

    def pressed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainkit.session.lr_find, "sweep", pressed)
    result = invoke(["lr-find", "--dataset", "idx", "--data-dir", str(synthetic_dir),
                     "--out", str(tmp_path / "sweep")])
    assert result.exit_code == EXIT_INTERRUPTED == 130
    assert result.output.strip() == "trainkit: lr-find interrupted (Ctrl+C)"  # not "Aborted!"
    assert not (tmp_path / "sweep").exists()


def test_lr_find_with_accumulation_sweeps_the_batch_the_optimizer_sees(synthetic_dir, tmp_path):
    """Two batches of 32 a step trace the curve of one batch of 64 (an MLP, to round-off)."""
    import csv

    def curve(name, *options):
        result = invoke(["lr-find", "--dataset", "idx", "--data-dir", str(synthetic_dir),
                         "--sweep-steps", "40", "--out", str(tmp_path / name), *options])
        assert result.exit_code == 0, result.output
        rows = list(csv.DictReader((tmp_path / name / "lr_find.csv").open()))
        return [float(row["lr"]) for row in rows], [float(row["loss"]) for row in rows]

    big_lrs, big = curve("big", "--batch-size", "64")
    acc_lrs, acc = curve("acc", "--batch-size", "32", "--accumulate", "2")
    one_lrs, one = curve("one", "--batch-size", "32")
    assert acc_lrs == big_lrs and len(big) > 20
    np.testing.assert_allclose(acc, big, rtol=1e-4)
    n = min(len(one), len(big))
    assert not np.allclose(one[:n], big[:n], rtol=1e-2)  # a batch of 32 traces another


def test_lr_auto_trains_as_the_lr_the_finder_prints(synthetic_dir, tmp_path):
    import json
    import re

    sweep = invoke(["lr-find", "--dataset", "idx", "--data-dir", str(synthetic_dir),
                    "--out", str(tmp_path / "sweep")])
    printed = re.search(r"train with --lr (\S+)\.", sweep.output).group(1)
    auto = invoke(quick(synthetic_dir, tmp_path / "auto", "--epochs", "2", "--lr", "auto"))
    assert auto.exit_code == 0, auto.output
    assert f"--lr auto: {printed}," in auto.output
    given = invoke(quick(synthetic_dir, tmp_path / "given", "--epochs", "2", "--lr", printed))
    assert given.exit_code == 0, given.output
    # the sweep's copy of the run takes nothing from the run: not its seeds, not its optimizer
    assert_same_training(tmp_path / "auto", tmp_path / "given")
    record = json.loads((tmp_path / "auto" / "run.json").read_text())
    assert record["config"]["lr"] == float(printed)
    resumed = invoke(quick(synthetic_dir, tmp_path / "auto", "--epochs", "3", "--resume",
                           str(tmp_path / "auto")))
    assert resumed.exit_code == 0 and "--lr auto" not in resumed.output  # the found lr goes on


@pytest.mark.parametrize("extra, says", [
    (["--lr", "fast"], "'fast' is not a number or 'auto'"),
    (["--lr", "auto", "--resume", "last"], "--lr auto picks the lr of a new run"),
])
def test_lr_auto_is_refused_where_it_cannot_work(synthetic_dir, tmp_path, extra, says):
    first = invoke(quick(synthetic_dir, tmp_path / "run", "--epochs", "1"))
    assert first.exit_code == 0, first.output
    result = invoke(quick(synthetic_dir, tmp_path / "run", "--epochs", "2", *extra))
    assert result.exit_code == 2 and says in result.output and "--lr" in result.output
    assert "Traceback" not in result.output


def test_lr_auto_is_refused_under_ddp(synthetic_dir, tmp_path):
    pytest.importorskip("mpi4py")
    result = invoke(quick(synthetic_dir, tmp_path / "run", "--plugin", "ddp", "--lr", "auto"))
    assert result.exit_code == 2 and "not under ddp" in result.output
    assert not (tmp_path / "run").exists()


def test_lr_auto_in_a_config_file_and_in_print_config(synthetic_dir, tmp_path):
    config = tmp_path / "run.toml"
    config.write_text('optimizer = "sgd"\nlr = "auto"\n')
    shown = invoke(quick(synthetic_dir, tmp_path / "run", "--config", str(config),
                         "--print-config"))
    assert 'lr = "auto"' in shown.output
    result = invoke(quick(synthetic_dir, tmp_path / "run", "--config", str(config),
                          "--epochs", "1"))
    assert result.exit_code == 0 and "--lr auto: " in result.output


def test_mixup_loss_is_the_mix_of_the_two_classes_losses():
    from trainkit.plugins.losses import CrossEntropy
    from trainkit.plugins.mixup import MixedTargets

    rng = np.random.default_rng(0)
    logits = (rng.normal(size=(8, 5)) * 2).astype(np.float32)
    y = rng.integers(0, 5, 8)
    partner, lam = rng.permutation(8), np.float32(0.3)
    mixed = MixedTargets(CrossEntropy())
    mixed.mixing = (partner, lam)
    value, grad = mixed.forward(logits, y), mixed.backward()
    own, other = CrossEntropy(), CrossEntropy()
    expected = lam * own.forward(logits.copy(), y) + (1 - lam) * other.forward(
        logits.copy(), y[partner])
    expected_grad = lam * own.backward() + (1 - lam) * other.backward()
    assert value == pytest.approx(expected, rel=1e-5)
    np.testing.assert_allclose(grad, expected_grad, atol=1e-6)
    mixed.mixing = None  # validation and test: the plain loss
    assert mixed.forward(logits.copy(), y) == pytest.approx(CrossEntropy().forward(logits, y))


def test_mixup_counts_the_larger_shares_class_and_keeps_the_mixed_targets():
    # Keras' accuracy on mixed labels: the class that makes up more of the image
    from types import SimpleNamespace

    from trainkit.plugins.losses import CrossEntropy
    from trainkit.plugins.mixup import MixedTargets, Mixup

    plugin, n = Mixup(alpha=0.4), 16
    plugin.targets = MixedTargets(CrossEntropy())
    logits = np.random.default_rng(1).normal(size=(n, 10)).astype(np.float32)
    shares = []
    for step in range(12):
        y = np.random.default_rng(step).integers(0, 10, n)
        draws = np.random.default_rng([plugin.seed, step, 0x313C])
        draws.random()
        partner, lam = draws.permutation(n), float(draws.beta(0.4, 0.4))
        trainer = SimpleNamespace(state=SimpleNamespace(global_step=step),
                                  context=SimpleNamespace(image_shape=(2, 2)))
        batch = (np.ones((n, 4), np.float32), y.copy())
        plugin.on_batch_start(trainer, batch)
        larger = y if lam >= 0.5 else y[partner]
        np.testing.assert_array_equal(batch[1], larger)
        own, other = CrossEntropy(), CrossEntropy()
        expected = lam * own.forward(logits.copy(), y) + (1 - lam) * other.forward(
            logits.copy(), y[partner])
        assert plugin.targets.forward(logits.copy(), batch[1]) == pytest.approx(expected,
                                                                              rel=1e-5)
        shares.append(lam >= 0.5)
    assert 0 < sum(shares) < len(shares)  # both cases were seen


def test_mixup_and_cutmix_resume_exactly_and_leave_evaluation_alone(synthetic_dir, tmp_path):
    import json

    from trainkit.persist.checkpoint_io import load_checkpoint
    from trainkit.plugins.mixup import Mixup
    from trainkit.testing import check_plugin

    (tmp_path / "check").mkdir()
    check_plugin(Mixup, name="mixup", ddp=False, folder=tmp_path / "check",
                 options={"mode": "both", "alpha": 0.4, "probability": 0.9})
    result = invoke(quick(synthetic_dir, tmp_path / "run", "--epochs", "1", "--plugin",
                          "mixup", "--mixup-mode", "cutmix", "--model", "cnn", "--channels",
                          "2,4", "--dense", "8"))
    assert result.exit_code == 0, result.output
    report = json.loads(invoke(["evaluate", str(tmp_path / "run"), "--json"]).output)
    logged = load_checkpoint(tmp_path / "run" / "final.npz")[0]["history"][-1]["test_acc"]
    assert report["metrics"]["acc"] == pytest.approx(logged, abs=1e-12)
    refused = CliRunner().invoke(make_cli(), quick(synthetic_dir, tmp_path / "r2", "--plugin",
                                                   "mixup", "--loss", "mse"))
    assert refused.exit_code != 0 and "needs the cross-entropy loss" in refused.output


@pytest.mark.parametrize("plugins", [[], ["--plugin", "ema", "--ema-decay", "0.9"]],
                         ids=["alone", "ema"])
def test_accumulating_two_batches_of_32_is_one_batch_of_64(synthetic_dir, tmp_path, plugins):
    """To round-off: the gradients are the same means, added in another order (an MLP: batch
    norm would normalise each micro-batch by its own statistics). ``ema`` averages once per
    optimizer step, as timm and Lightning do: the saved model is its average."""
    from trainkit.persist.checkpoint_io import load_checkpoint

    one = invoke(quick(synthetic_dir, tmp_path / "big", "--epochs", "2", "--batch-size", "64",
                       "--lr-schedule", "warmup-cosine", "--lr-schedule-warmup-steps", "5",
                       *plugins))
    two = invoke(quick(synthetic_dir, tmp_path / "acc", "--epochs", "2", "--batch-size", "32",
                       "--accumulate", "2", "--lr-schedule", "warmup-cosine",
                       "--lr-schedule-warmup-steps", "5", *plugins))
    assert one.exit_code == two.exit_code == 0, one.output + two.output
    big = load_checkpoint(tmp_path / "big" / "final.npz")
    acc = load_checkpoint(tmp_path / "acc" / "final.npz")
    # the optimizer stepped as often, and the per-step schedule counted its steps
    assert big[1]["optimizer/m_sum"].shape == acc[1]["optimizer/m_sum"].shape
    assert big[0]["optimizer"]["iterations"] == acc[0]["optimizer"]["iterations"]
    assert big[0]["history"][-1]["lr"] == pytest.approx(acc[0]["history"][-1]["lr"])
    for key in big[1]:
        if key.startswith("model/"):
            np.testing.assert_allclose(acc[1][key], big[1][key], rtol=1e-4, atol=1e-5,
                                       err_msg=key)


def test_a_resume_between_two_accumulated_batches_is_exact(synthetic_dir, tmp_path):
    from trainkit.persist.checkpoint_io import load_checkpoint

    args = ["--epochs", "2", "--batch-size", "32", "--accumulate", "3", "--plugin",
            "checkpoint"]
    assert invoke(quick(synthetic_dir, tmp_path / "whole", *args)).exit_code == 0
    from trainkit.testing.doubles import InterruptAt

    cut = CliRunner().invoke(make_cli([InterruptAt(4)]), quick(synthetic_dir, tmp_path / "cut",
                                                               *args))
    assert cut.exit_code == 130, cut.output  # Ctrl+C after the 4th batch: 1 of a group of 3
    manifest, arrays = load_checkpoint(tmp_path / "cut" / "emergency.npz")
    assert manifest["accumulated"] == 1 and "accumulated" in arrays
    resumed = invoke(["run", "--resume", str(tmp_path / "cut"), "--dataset", "idx",
                      "--data-dir", str(synthetic_dir)])
    assert resumed.exit_code == 0, resumed.output
    assert_same_training(tmp_path / "whole", tmp_path / "cut")


def test_all_of_them_at_once_resume_bit_exact_after_a_ctrl_c_mid_epoch(synthetic_dir, tmp_path):
    from trainkit.persist.checkpoint_io import load_checkpoint
    from trainkit.testing.doubles import InterruptAt

    args = ["--epochs", "3", "--model", "cnn", "--channels", "2,4", "--dense", "8",
            "--batch-size", "32", "--accumulate", "2", "--label-smoothing", "0.1",
            "--optimizer", "adam", "--weight-decay", "0.0001",
            "--plugin", "grad-clip", "--plugin", "ema", "--plugin", "swa", "--swa-start", "2",
            "--plugin", "augment", "--augment-erase", "0.3", "--plugin", "mixup",
            "--mixup-mode", "both", "--plugin", "checkpoint"]
    whole = invoke(quick(synthetic_dir, tmp_path / "whole", *args))
    assert whole.exit_code == 0, whole.output
    cut = CliRunner().invoke(make_cli([InterruptAt(20)]), quick(synthetic_dir, tmp_path / "cut",
                                                                *args))
    assert cut.exit_code == 130, cut.output  # mid-epoch 2, inside an accumulated pair
    resumed = invoke(["run", "--resume", str(tmp_path / "cut"), "--dataset", "idx",
                      "--data-dir", str(synthetic_dir)])
    assert resumed.exit_code == 0, resumed.output
    a = load_checkpoint(tmp_path / "whole" / "final.npz")
    b = load_checkpoint(tmp_path / "cut" / "final.npz")
    assert a[1].keys() == b[1].keys()
    for key in a[1]:
        np.testing.assert_array_equal(a[1][key], b[1][key], err_msg=key)
    assert a[0]["history"][-1]["test_acc"] == b[0]["history"][-1]["test_acc"]


def test_the_options_of_the_loss_auto_chooses_are_kept_and_fixed_on_resume(synthetic_dir,
                                                                             tmp_path):
    from trainkit.persist.checkpoint_io import load_checkpoint

    assert invoke(quick(synthetic_dir, tmp_path / "run", "--epochs", "1", "--plugin",
                        "checkpoint", "--label-smoothing", "0.1")).exit_code == 0
    assert load_checkpoint(tmp_path / "run" / "last.npz")[0]["config"]["label_smoothing"] == 0.1
    changed = CliRunner().invoke(make_cli(), ["run", "--resume", str(tmp_path / "run"),
                                              "--epochs", "2", "--label-smoothing", "0.2",
                                              "--dataset", "idx", "--data-dir",
                                              str(synthetic_dir)])
    assert changed.exit_code == 2 and "label_smoothing" in changed.output


def test_ema_with_early_stopping_restores_the_best_epochs_averaged_weights(synthetic_dir,
                                                                         tmp_path):
    # EMA validates the average, so the best epoch is the average's, and restoring it must put
    # that epoch's average back (the weights its checkpoint holds), not the training weights
    from trainkit.persist.checkpoint_io import load_checkpoint

    run = tmp_path / "run"
    result = invoke(quick(synthetic_dir, run, "--epochs", "4", "--plugin", "ema",
                          "--ema-decay", "0.9", "--plugin", "early-stopping",
                          "--early-stopping-restore-best", "--early-stopping-patience", "9",
                          "--early-stopping-monitor", "val_loss", "--early-stopping-mode",
                          "max", "--checkpoint-keep", "0"))  # max: a loss's worst, epoch 1
    assert result.exit_code == 0, result.output
    manifest, final = load_checkpoint(run / "final.npz")
    best = manifest["history"]
    best_epoch = max(range(len(best)), key=lambda i: best[i]["val_loss"]) + 1
    assert best_epoch < 4
    at_best, saved = load_checkpoint(run / f"epoch-{best_epoch:03d}.npz")
    assert at_best["plugins"]["ema"]["model_holds_average"]  # that file's model: the average
    last = load_checkpoint(run / "epoch-004.npz")[1]
    model_keys = [key for key in final if key.startswith("model/")]
    assert model_keys
    for key in model_keys:
        np.testing.assert_array_equal(final[key], saved[key])
    assert any(not np.array_equal(final[key], last[key]) for key in model_keys)


@pytest.mark.parametrize("schedule", ["cosine", "warmup-cosine"])  # per epoch, per step
def test_swa_lr_takes_over_from_the_runs_lr_schedule(synthetic_dir, tmp_path, schedule):
    # the cnn's default cosine schedule set the lr after swa did, so --swa-lr was ignored
    from trainkit.persist.checkpoint_io import load_checkpoint

    run = tmp_path / "run"
    result = invoke(quick(synthetic_dir, run, "--epochs", "4", "--lr-schedule", schedule,
                          "--plugin", "swa", "--swa-start", "3", "--swa-lr", "0.05"))
    assert result.exit_code == 0, result.output
    lrs = [epoch["lr"] for epoch in load_checkpoint(run / "final.npz")[0]["history"]]
    assert lrs[2:] == [pytest.approx(0.05)] * 2
    assert all(lr < 0.05 for lr in lrs[:2])


def test_swa_with_ema_averages_the_weights_ema_validated(synthetic_dir, tmp_path):
    # at an epoch's end the model holds EMA's average (validated and checkpointed): that is
    # what swa's equal average takes, and what the run ends with
    from trainkit.persist.checkpoint_io import load_checkpoint

    run = tmp_path / "run"
    result = invoke(quick(synthetic_dir, run, "--epochs", "2", "--plugin", "ema",
                          "--ema-decay", "0.9", "--plugin", "swa", "--swa-start", "1",
                          "--checkpoint-keep", "0"))
    assert result.exit_code == 0, result.output
    final = load_checkpoint(run / "final.npz")[1]
    one, two = (load_checkpoint(run / f"epoch-00{e}.npz") for e in (1, 2))
    assert one[0]["plugins"]["ema"]["model_holds_average"]
    keys = [key for key in final if key.startswith("model/")]
    assert keys
    for key in keys:
        np.testing.assert_allclose(final[key], (one[1][key] + two[1][key]) / 2, rtol=1e-6,
                                   atol=1e-7)
