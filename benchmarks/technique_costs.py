"""What the day-two techniques cost and give, measured in one run.

    TRAINKIT_DATA_DIR=../shared/data python benchmarks/technique_costs.py augment
    TRAINKIT_DATA_DIR=../shared/data python benchmarks/technique_costs.py lr-find

``augment``: the default convnet's training time for 300 batches of MNIST without and with
the recipes' techniques (``--plugin augment --augment-erase 0.25``; the flip alone and mixup)
at the default thread count, alternating seven times (the loop's own time,
``trainer.loop_seconds``: no data loading, validation or test).
``lr-find``: the default MLP and convnet for 3 epochs at the default lr and with ``--lr auto``
(the lr ``trainkit lr-find`` prints, swept on the run's threads), and their test accuracy.
"""

from __future__ import annotations

import statistics
import sys

from trainkit.session import Session


def quiet(message, error=False):
    pass


def loop_seconds(extra: dict) -> float:
    config = {"model": "cnn", "epochs": 1, "limit_batches": 300, "val_split": 0.01,
              "no_plugin": ["progress", "console", "checkpoint", "history"], "out": None, **extra}
    outcome = Session(config, report=quiet).fit()
    return outcome.trainer.loop_seconds


#: The recipes' batch techniques (README): MNIST's, and Fashion-MNIST's with mixup.
RECIPES = {
    "augment, erase 0.25 (MNIST's recipe)": {"plugin": ["augment"], "augment": {"erase": 0.25}},
    "augment, flip only, and mixup (Fashion-MNIST's)": {
        "plugin": ["augment", "mixup"], "augment": {"probability": 0.0, "flip": 0.5}},
}


def augment() -> None:
    runs: dict[str, list[float]] = {"none": [], **{name: [] for name in RECIPES}}
    for _ in range(7):
        runs["none"].append(loop_seconds({}))
        for name, extra in RECIPES.items():
            runs[name].append(loop_seconds(extra))
    plain = runs["none"]
    for name in RECIPES:
        paired = statistics.median(b / a for a, b in zip(plain, runs[name]))
        print(f"| {name}, 300 batches | {statistics.median(plain):.2f} s | "
              f"{statistics.median(runs[name]):.2f} s | {paired:.3f} |")


def lr_find() -> None:
    for model in ("mlp", "cnn"):
        scores = {}
        for label, lr in (("default", None), ("auto", "auto")):  # --lr auto: lr-find's value
            config = {"model": model, "epochs": 3, "no_plugin": ["progress"], "out": None}
            if lr is not None:
                config["lr"] = lr
            outcome = Session(config, report=quiet).fit()
            scores[label] = (outcome.trainer.context.config["lr"], outcome.test_logs["test_acc"])
        (d_lr, d_acc), (s_lr, s_acc) = scores["default"], scores["auto"]
        print(f"| {model} | {d_lr:.2g}: {d_acc:.4f} | {s_lr:.2g}: {s_acc:.4f} |")


if __name__ == "__main__":
    {"augment": augment, "lr-find": lr_find}[sys.argv[1]]()
