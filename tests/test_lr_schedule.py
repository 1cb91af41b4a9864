"""lr-schedule: each schedule's closed form, the lr logged every epoch, per-step schedules
that resume exactly, and the option named after the plugin."""

from __future__ import annotations

import math

import pytest
from click.testing import CliRunner

from trainkit.cli import make_cli
from trainkit.plugins.lr_schedule import LRSchedule


def schedule(**kw):
    plugin = LRSchedule(**kw)
    plugin.base_lr = 1.0
    return plugin


def test_step():
    plugin = schedule(schedule="step", step_size=2, gamma=0.5)
    assert [plugin.lr_at(e, 6) for e in range(1, 7)] == [1, 1, 0.5, 0.5, 0.25, 0.25]


def test_exponential():
    plugin = schedule(schedule="exponential", gamma=0.9)
    assert plugin.lr_at(3, 10) == pytest.approx(0.81)


def test_cosine_follows_pytorchs_cosine_annealing_and_never_trains_an_epoch_at_min_lr():
    plugin = schedule(schedule="cosine", warmup=2, min_lr=0.1)
    lrs = [plugin.lr_at(e, 7) for e in range(1, 8)]
    assert lrs[:3] == [0.5, 1.0, 1.0]
    t_max = 5  # the epochs after the warm-up
    for epoch in range(3, 8):  # CosineAnnealingLR's closed form, epoch t = epoch - 3
        expected = 0.1 + 0.9 * (1 + math.cos(math.pi * (epoch - 3) / t_max)) / 2
        assert lrs[epoch - 1] == pytest.approx(expected)
    assert lrs[-1] > 0.1 + 1e-3
    assert all(a >= b for a, b in zip(lrs[2:], lrs[3:]))


def test_a_two_epoch_cosine_run_improves_in_both_epochs(synthetic_dir, tmp_path):
    result = CliRunner().invoke(make_cli(), [
        "run", "--dataset", "idx", "--data-dir", str(synthetic_dir), "--epochs", "2", "--out",
        "run", "--lr", "0.002", "--plugin", "lr-schedule", "--plugin", "history"],
        catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = (tmp_path / "run" / "history.csv").read_text().splitlines()
    header = rows[0].split(",")
    values = [dict(zip(header, row.split(","))) for row in rows[1:]]
    assert [float(v["lr"]) for v in values] == pytest.approx([0.002, 0.001])  # T_max = 2
    assert float(values[1]["val_loss"]) < float(values[0]["val_loss"])


class Opt:
    lr = 1.0


class FakeTrainer:
    optimizer = Opt()


def test_reduce_on_plateau_decays_after_patience():
    plugin = LRSchedule(schedule="reduce-on-plateau", patience=2, gamma=0.5)
    trainer = FakeTrainer()
    plugin.on_fit_start(trainer)
    seen = []
    for value in [1.0, 0.9, 0.95, 0.96, 0.97, 0.98]:
        plugin.on_epoch_end(trainer, {"val_loss": value})
        seen.append(trainer.optimizer.lr)
    assert seen == [1.0, 1.0, 1.0, 0.5, 0.5, 0.25]


def test_the_lr_is_logged_every_epoch(synthetic_dir, tmp_path):
    result = CliRunner().invoke(make_cli(), [
        "run", "--dataset", "idx", "--data-dir", str(synthetic_dir), "--epochs", "3", "--out",
        "run", "--lr", "0.01",
        "--lr-schedule", "step", "--lr-schedule-step-size",
        "1", "--lr-schedule-gamma", "0.5", "--plugin", "history"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "run" / "history.csv").read_text().splitlines()
    lr_column = lines[0].split(",").index("lr")
    assert [float(line.split(",")[lr_column]) for line in lines[1:]] == [0.01, 0.005, 0.0025]


def test_warmup_cosine_rises_linearly_then_follows_the_cosine_over_every_step():
    plugin = schedule(schedule="warmup-cosine", warmup_steps=4, min_lr=0.1)
    total = 20
    lrs = [plugin.lr_at_step(step, total, steps_per_epoch=10) for step in range(total)]
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    for step in range(4, total):
        expected = 0.1 + 0.9 * (1 + math.cos(math.pi * (step - 4) / 16)) / 2
        assert lrs[step] == pytest.approx(expected, rel=1e-12)
    assert lrs[-1] > 0.1  # the last step still learns
    by_epochs = schedule(schedule="warmup-cosine", warmup=1)  # warm-up given in epochs
    assert by_epochs.lr_at_step(9, 30, steps_per_epoch=10) == 1.0
    assert by_epochs.lr_at_step(8, 30, steps_per_epoch=10) == pytest.approx(0.9)


def test_one_cycle_follows_pytorchs_one_cycle_lr():
    plugin = schedule(schedule="one-cycle", pct_start=0.25)
    total = 40
    lrs = [plugin.lr_at_step(step, total, steps_per_epoch=10) for step in range(total)]

    def anneal(start, end, pct):  # OneCycleLR's cosine annealing, from its documentation
        return end + (start - end) / 2 * (math.cos(math.pi * pct) + 1)

    initial, peak_step = 1.0 / 25, 0.25 * total - 1
    final = initial / 1e4
    for step, lr in enumerate(lrs):
        if step <= peak_step:
            expected = anneal(initial, 1.0, step / peak_step)
        else:
            expected = anneal(1.0, final, (step - peak_step) / (total - 1 - peak_step))
        assert lr == pytest.approx(expected, rel=1e-12), step
    assert lrs[0] == pytest.approx(0.04) and max(lrs) == pytest.approx(1.0)
    assert lrs[-1] == pytest.approx(final)


def history_lrs(folder):
    from trainkit.persist.checkpoint_io import load_checkpoint

    return [row["lr"] for row in load_checkpoint(folder / "last.npz")[0]["history"]]


def test_the_schedule_option_named_after_the_plugin_turns_it_on_and_the_old_name_works(
        synthetic_dir, tmp_path):
    common = ["run", "--dataset", "idx", "--data-dir", str(synthetic_dir), "--epochs", "3",
              "--lr", "0.01", "--lr-schedule-step-size", "1", "--lr-schedule-gamma", "0.5"]
    new = CliRunner().invoke(make_cli(), [*common, "--out", "new", "--lr-schedule", "step"])
    assert new.exit_code == 0, new.output
    old = CliRunner().invoke(make_cli(), [*common, "--out", "old", "--plugin", "lr-schedule",
                                          "--lr-schedule-schedule", "step"])
    assert old.exit_code == 0, old.output
    assert history_lrs(tmp_path / "new") == history_lrs(tmp_path / "old") == [0.01, 0.005,
                                                                                0.0025]


def test_reduce_on_plateau_never_raises_the_lr_to_a_min_lr_above_it():
    plugin = LRSchedule(schedule="reduce-on-plateau", patience=1, min_lr=0.05)
    trainer = FakeTrainer()
    trainer.optimizer = Opt()
    trainer.optimizer.lr = 0.01
    said = []
    trainer.say = lambda message, level="info": said.append(message)
    plugin.on_fit_start(trainer)
    for value in [1.0, 2.0, 3.0]:
        plugin.on_epoch_end(trainer, {"val_loss": value})
        assert trainer.optimizer.lr == 0.01
    assert said == ["trainkit: lr-schedule: warning: min_lr 0.05 is above the lr 0.01: the "
                    "reduce-on-plateau schedule never goes below 0.01, and never above it either"]


@pytest.mark.parametrize("name", ["step", "exponential", "cosine", "warmup-cosine"])
def test_no_schedule_lifts_the_lr_to_a_min_lr_above_it(name):
    plugin = LRSchedule(schedule=name, min_lr=0.5)
    plugin.base_lr = 0.1
    lrs = ([plugin.lr_at_step(s, 30, 10) for s in range(30)] if name == "warmup-cosine"
           else [plugin.lr_at(e, 5) for e in range(1, 6)])
    assert max(lrs) <= 0.1


@pytest.mark.parametrize("flags,message", [
    (["--lr-schedule", "step", "--lr-schedule-warmup", "3"],
     "warmup does not apply to the step schedule (it applies to cosine, warmup-cosine)"),
    (["--lr-schedule", "cosine", "--lr-schedule-patience", "4"],
     "patience does not apply to the cosine schedule (it applies to reduce-on-plateau)"),
    (["--lr-schedule", "one-cycle", "--lr-schedule-min-lr", "0.001"],
     "min_lr does not apply to the one-cycle schedule"),
])
def test_an_option_the_chosen_schedule_never_reads_is_refused_not_ignored(synthetic_dir, flags,
                                                                           message):
    result = CliRunner().invoke(make_cli(), ["run", "--dataset", "idx", "--data-dir",
                                             str(synthetic_dir), "--epochs", "1", *flags])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
