"""lr-schedule and early-stopping against PyTorch's schedulers and Keras' callbacks.

Every case below was driven once through the real libraries (the versions are stored with the
results in schedule_references.json) on the same settings and the same scripted values. trainkit
must give the same lr sequence (to 1e-7 relative) and stop on the same epoch with the same
weights, except where a case says ``differs``: there the expected trainkit result is written
here by hand, with the reason, and docs/plugins.md's table states the same difference.

Recompute the references live where torch and keras are installed (keras with its torch
backend), and compare them with the stored ones:

    KERAS_BACKEND=torch python tests/test_schedule_references.py          # compare
    KERAS_BACKEND=torch python tests/test_schedule_references.py --write  # store anew
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

REFERENCES = Path(__file__).with_name("schedule_references.json")
NAN, INF = float("nan"), float("inf")

#: lr schedules against PyTorch: trainkit's options, and the epochs or steps of the run.
SCHEDULES = {
    "step": dict(options=dict(schedule="step", step_size=3, gamma=0.5), lr=0.1, epochs=10),
    "exponential": dict(options=dict(schedule="exponential", gamma=0.8), lr=0.1, epochs=8),
    "cosine": dict(options=dict(schedule="cosine", min_lr=0.001), lr=0.1, epochs=10),
    "cosine-warmup": dict(options=dict(schedule="cosine", warmup=3, min_lr=0.001), lr=0.1,
                          epochs=10),
    "cosine-cycle": dict(options=dict(schedule="cosine", cycle=4, min_lr=0.001), lr=0.1,
                         epochs=10, differs=dict(
                             agree_for=5, why="after its cycle trainkit stays at min_lr; "
                                              "PyTorch's CosineAnnealingLR climbs back up")),
    "warmup-cosine": dict(options=dict(schedule="warmup-cosine", warmup_steps=8, min_lr=1e-4),
                          lr=0.1, epochs=5, steps_per_epoch=10),
    "one-cycle": dict(options=dict(schedule="one-cycle", pct_start=0.3), lr=0.1, epochs=5,
                      steps_per_epoch=10),
    "one-cycle-uneven": dict(options=dict(schedule="one-cycle", pct_start=0.25), lr=0.05,
                             epochs=7, steps_per_epoch=13),
}

#: reduce-on-plateau against PyTorch's ReduceLROnPlateau (lr after each epoch) and Keras'.
PLATEAUS = {
    "patience-2": dict(options=dict(patience=2, gamma=0.5), lr=1.0,
                       values=[1.0, 0.9, 0.95, 0.96, 0.97, 0.98, 0.5, 0.6, 0.7]),
    "min-lr-above-lr": dict(options=dict(patience=1, gamma=0.1, min_lr=0.05), lr=0.01,
                            values=[1.0, 2.0, 3.0]),
    "min-lr-floor": dict(options=dict(patience=1, gamma=0.1, min_lr=0.005), lr=0.1,
                         values=[1.0, 2.0, 3.0, 4.0]),
    "cooldown": dict(options=dict(patience=1, gamma=0.5, cooldown=2), lr=1.0,
                     values=[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
                     keras_differs="Keras counts the last epoch of its cooldown as a stall; "
                                   "trainkit and PyTorch count none of them"),
    "threshold-rel": dict(options=dict(patience=1, gamma=0.5, threshold=0.1,
                                       threshold_mode="rel"), lr=1.0,
                          values=[1.0, 0.95, 0.85, 0.8, 0.7], keras=False),
    "threshold-abs": dict(options=dict(patience=1, gamma=0.5, threshold=0.05), lr=1.0,
                          values=[1.0, 0.96, 0.9, 0.86, 0.84, 0.83]),
    "max-mode": dict(options=dict(patience=1, gamma=0.5, monitor="val_acc"), lr=1.0,
                     values=[0.5, 0.6, 0.55, 0.58, 0.7, 0.69]),
    "nan": dict(options=dict(patience=1, gamma=0.5), lr=1.0, values=[NAN, 1.0, NAN, NAN, 0.5],
                keras_differs="Keras takes a NaN first value as its best, and then no value "
                              "improves on it; trainkit and PyTorch count a NaN as a stall"),
}

#: early stopping against Keras' EarlyStopping: the epoch it stops after (None: it runs to the
#: end) and whose weights the run ends with.
STOPS = {
    "patience": dict(options=dict(patience=2, restore_best=True),
                     values=[1.0, 0.8, 0.85, 0.9, 0.5]),
    "no-restore": dict(options=dict(patience=1), values=[1.0, 2.0, 0.5]),
    "ties-are-no-improvement": dict(options=dict(patience=2, restore_best=True),
                                    values=[0.5, 0.5, 0.5, 0.4]),
    "min-delta-max-mode": dict(options=dict(patience=1, min_delta=0.01, restore_best=True,
                                            monitor="val_acc"),
                               values=[0.90, 0.95, 0.955, 0.99]),
    "mode-against-the-name": dict(options=dict(patience=1, monitor="val_acc", mode="min",
                                               restore_best=True),
                                  values=[0.9, 0.8, 0.85, 0.95]),
    "inf": dict(options=dict(patience=2, restore_best=True), values=[INF, 1.0, 1.0, INF, 2.0]),
    "baseline-never-beaten": dict(options=dict(patience=2, baseline=0.5, restore_best=True),
                                  values=[0.9, 0.95, 0.7]),
    "baseline-beaten-later": dict(options=dict(patience=3, baseline=0.5, restore_best=True),
                                  values=[0.9, 0.4, 0.45, 0.5, 0.3, 0.6, 0.7, 0.8]),
    "baseline-approached": dict(
        options=dict(patience=2, baseline=0.5, restore_best=True),
        values=[0.9, 0.8, 0.7, 0.6], differs=dict(
            stop=2, weights=2, why="an epoch that improves on the best but not on the baseline "
                                   "counts towards patience, as Keras documents the baseline; "
                                   "Keras 3 never stops on such an epoch")),
    "nan-first": dict(options=dict(patience=2, restore_best=True), values=[NAN, NAN, 0.5],
                      differs=dict(stop=2, weights=2,
                                   why="a NaN is never the best: with no finite value trainkit "
                                       "stops after patience epochs and keeps the last weights; "
                                       "Keras takes the first value as its best even when it "
                                       "is NaN, and restores that epoch's weights")),
    "nan-later": dict(options=dict(patience=2, restore_best=True),
                      values=[1.0, NAN, NAN, 0.5]),
    # Keras' patience=0 and patience=1 are the same; trainkit's patience counts from 1
    "patience-one-is-keras-zero": dict(options=dict(patience=1, restore_best=True),
                                       keras_patience=0, values=[1.0, 1.1, 0.9]),
}


# ----------------------------------------------------------------------------------- trainkit


class Optimizer:
    def __init__(self, lr):
        self.lr = lr


class FakeTrainer:
    is_main_process = True

    def __init__(self, lr=1.0):
        self.optimizer = Optimizer(lr)
        self.model = type("Model", (), {"params": np.zeros(1, np.float32),
                                        "states": np.zeros(0, np.float32)})()
        self.stopped = None
        self.plugins = {}
        self.said = []

    def stop(self, reason, message=None):
        self.stopped = reason

    def say(self, message, level="info"):
        self.said.append(message)


def trainkit_schedule(case):
    from trainkit.plugins.lr_schedule import LRSchedule

    plugin = LRSchedule(**case["options"])
    plugin.base_lr = case["lr"]
    if "steps_per_epoch" in case:
        total = case["epochs"] * case["steps_per_epoch"]
        return [plugin.lr_at_step(s, total, case["steps_per_epoch"]) for s in range(total)]
    return [plugin.lr_at(e, case["epochs"]) for e in range(1, case["epochs"] + 1)]


def trainkit_plateau(case):
    from trainkit.plugins.lr_schedule import LRSchedule

    options = dict(case["options"])
    monitor = options.setdefault("monitor", "val_loss")
    plugin = LRSchedule(schedule="reduce-on-plateau", **options)
    trainer = FakeTrainer(case["lr"])
    plugin.on_fit_start(trainer)
    lrs = []
    for value in case["values"]:
        plugin.on_epoch_end(trainer, {monitor: value})
        lrs.append(trainer.optimizer.lr)
    return lrs


def trainkit_stop(case):
    """(the epoch it stopped after or None, the epoch whose weights the run ends with)."""
    from trainkit.plugins.early_stopping import EarlyStopping

    options = dict(case["options"])
    monitor = options.setdefault("monitor", "val_loss")
    plugin = EarlyStopping(**options)
    trainer = FakeTrainer()
    stopped = None
    for epoch, value in enumerate(case["values"], 1):
        trainer.model.params[:] = epoch
        plugin.on_epoch_end(trainer, epoch, {monitor: value})
        if trainer.stopped:
            stopped = epoch
            break
    plugin.on_train_end(trainer, trainer.stopped or "completed")
    return stopped, int(trainer.model.params[0])


# ----------------------------------------------------------------------- the live references


def pytorch_schedule(case):
    import torch

    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=case["lr"])
    o = case["options"]
    per_step = "steps_per_epoch" in case
    total = case["epochs"] * case.get("steps_per_epoch", 1)
    min_lr = o.get("min_lr", 0.0)
    name = o["schedule"]
    if name == "step":
        sched = torch.optim.lr_scheduler.StepLR(opt, o["step_size"], o["gamma"])
    elif name == "exponential":
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, o["gamma"])
    elif name == "one-cycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=case["lr"], total_steps=total, pct_start=o["pct_start"],
            cycle_momentum=False)
    else:  # cosine and warmup-cosine: a linear warm-up, then CosineAnnealingLR
        warmup = o.get("warmup_steps") or o.get("warmup", 0)
        t_max = o.get("cycle") or total - warmup
        cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, t_max, eta_min=min_lr)
        sched = cosine
        if warmup:
            linear = torch.optim.lr_scheduler.LinearLR(opt, 1 / warmup, 1.0, warmup - 1)
            sched = torch.optim.lr_scheduler.SequentialLR(opt, [linear, cosine], [warmup])
    lrs = []
    for _ in range(total):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert per_step or len(lrs) == case["epochs"]
    return lrs


def pytorch_plateau(case):
    import torch

    o = case["options"]
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=case["lr"])
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode="max" if o.get("monitor") == "val_acc" else "min", factor=o["gamma"],
        patience=o["patience"] - 1, threshold=o.get("threshold", 0.0),
        threshold_mode=o.get("threshold_mode", "abs"), cooldown=o.get("cooldown", 0),
        min_lr=o.get("min_lr", 0.0))
    lrs = []
    for value in case["values"]:
        sched.step(value)
        lrs.append(opt.param_groups[0]["lr"])
    return lrs


def keras_plateau(case):
    import keras

    o = case["options"]
    opt = keras.optimizers.SGD(learning_rate=case["lr"])
    model = type("Model", (), {"optimizer": opt})()
    monitor = o.get("monitor", "val_loss")
    callback = keras.callbacks.ReduceLROnPlateau(
        monitor=monitor, factor=o["gamma"], patience=o["patience"],
        min_delta=o.get("threshold", 0.0), cooldown=o.get("cooldown", 0),
        min_lr=o.get("min_lr", 0.0), mode="max" if monitor == "val_acc" else "min")
    callback.set_model(model)
    callback.on_train_begin()
    lrs = []
    for epoch, value in enumerate(case["values"]):
        callback.on_epoch_end(epoch, {monitor: value})
        lrs.append(float(opt.learning_rate))
    return lrs


def keras_stop(case):
    import keras

    class Model:
        stop_training = False
        weights = [np.zeros(1)]

        def get_weights(self):
            return [w.copy() for w in self.weights]

        def set_weights(self, weights):
            self.weights = weights

    o = case["options"]
    model = Model()
    callback = keras.callbacks.EarlyStopping(
        monitor=o.get("monitor", "val_loss"),
        mode=o.get("mode") or ("max" if o.get("monitor") == "val_acc" else "min"),
        patience=case.get("keras_patience", o["patience"]), min_delta=o.get("min_delta", 0.0),
        baseline=o.get("baseline"), restore_best_weights=o.get("restore_best", False))
    callback.set_model(model)
    callback.on_train_begin()
    stopped = None
    for epoch, value in enumerate(case["values"]):
        model.weights = [np.full(1, epoch + 1.0)]
        callback.on_epoch_end(epoch, {o.get("monitor", "val_loss"): value})
        if model.stop_training:
            stopped = epoch + 1
            break
    callback.on_train_end()
    return stopped, int(model.weights[0][0])


def compute_references() -> dict:
    import keras
    import torch

    return {
        "versions": {"torch": torch.__version__, "keras": keras.__version__,
                     "keras_backend": keras.backend.backend()},
        "schedules": {name: pytorch_schedule(case) for name, case in SCHEDULES.items()},
        "plateaus": {name: {"pytorch": pytorch_plateau(case),
                            "keras": keras_plateau(case) if case.get("keras", True) else None}
                     for name, case in PLATEAUS.items()},
        "stops": {name: list(keras_stop(case)) for name, case in STOPS.items()},
    }


def stored() -> dict:
    return json.loads(REFERENCES.read_text(encoding="utf-8"))


def same_lrs(ours, theirs, rel=1e-7):
    return len(ours) == len(theirs) and all(
        math.isclose(a, b, rel_tol=rel, abs_tol=1e-15) for a, b in zip(ours, theirs))


# ------------------------------------------------------------------------------------- tests


def test_the_references_name_the_library_versions_they_came_from():
    versions = stored()["versions"]
    assert versions["torch"].startswith("2.") and versions["keras"].startswith("3.")


@pytest.mark.parametrize("name", SCHEDULES)
def test_every_schedule_gives_pytorchs_lr_sequence(name):
    case, reference = SCHEDULES[name], stored()["schedules"][name]
    ours = trainkit_schedule(case)
    differs = case.get("differs")
    if differs is None:
        assert same_lrs(ours, reference), (ours, reference)
        return
    n = differs["agree_for"]
    assert same_lrs(ours[:n], reference[:n])
    assert not same_lrs(ours, reference)  # the stated difference is real
    min_lr = case["options"]["min_lr"]
    assert ours[n - 1:] == [min_lr] * (len(ours) - n + 1)


@pytest.mark.parametrize("name", PLATEAUS)
def test_reduce_on_plateau_gives_pytorchs_lr_sequence_and_keras(name):
    case, reference = PLATEAUS[name], stored()["plateaus"][name]
    ours = trainkit_plateau(case)
    assert same_lrs(ours, reference["pytorch"]), (ours, reference["pytorch"])
    if reference["keras"] is None:
        return
    keras_agrees = same_lrs(ours, reference["keras"], rel=1e-6)  # Keras keeps the lr in float32
    assert keras_agrees == ("keras_differs" not in case), (ours, reference["keras"])


@pytest.mark.parametrize("name", STOPS)
def test_early_stopping_stops_where_keras_does(name):
    case, (keras_stop_at, keras_weights) = STOPS[name], stored()["stops"][name]
    ours = trainkit_stop(case)
    differs = case.get("differs")
    if differs is None:
        assert ours == (keras_stop_at, keras_weights)
    else:
        assert ours == (differs["stop"], differs["weights"])
        assert ours != (keras_stop_at, keras_weights)  # the stated difference is real


def test_the_stored_references_are_what_the_libraries_compute_today():
    pytest.importorskip("torch")
    pytest.importorskip("keras")
    live = compute_references()
    assert live["schedules"].keys() == stored()["schedules"].keys()
    for name, lrs in live["schedules"].items():
        assert same_lrs(lrs, stored()["schedules"][name]), name
    assert live["stops"] == stored()["stops"]


def main(argv: list[str]) -> int:
    live = compute_references()
    if "--write" in argv:
        REFERENCES.write_text(json.dumps(live, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {REFERENCES}")
        return 0
    old = stored()
    problems = [f"{group}/{name}" for group in ("schedules", "stops")
                for name in live[group] if live[group][name] != old[group].get(name)
                and not (group == "schedules" and same_lrs(live[group][name], old[group][name]))]
    print(f"torch {live['versions']['torch']}, keras {live['versions']['keras']}: "
          + (f"differ from the stored references: {', '.join(problems)}" if problems
             else "the stored references stand"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    raise SystemExit(main(sys.argv[1:]))
