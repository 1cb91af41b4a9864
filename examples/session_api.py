"""Start, stop and resume a run from Python, through the Session the CLI uses.

    TRAINKIT_DATA_DIR=../shared/data python examples/session_api.py --out runs/session-demo

It trains 2 epochs, then resumes the same run folder to 4 epochs, and checks the weights
against a run that trained 4 epochs in one go: they are identical, bit for bit. Each run folder
gets what `trainkit run` writes: checkpoints and run.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from trainkit import hookimpl
from trainkit.persist.checkpoint_io import load_checkpoint
from trainkit.session import Session


class EpochCounter:
    """A plugin object of our own: counts the epochs it saw, and keeps the count in checkpoints
    so a resumed run goes on counting."""

    name = "epoch-counter"

    def __init__(self) -> None:
        self.seen = 0

    @hookimpl
    def on_epoch_end(self):
        self.seen += 1

    @hookimpl
    def on_save_checkpoint(self, state):
        state["epoch-counter"] = {"seen": self.seen}

    @hookimpl
    def on_load_checkpoint(self, state):
        self.seen = state.get("epoch-counter", {}).get("seen", 0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("runs/session-demo"))
    parser.add_argument("--dataset", default="mnist")
    args = parser.parse_args()
    config = {"dataset": args.dataset, "hidden": (64,), "threads": 1}
    split, whole = args.out / "split", args.out / "whole"

    counter = EpochCounter()
    Session({**config, "epochs": 2, "out": str(split)}, overwrite=True, plugins=[counter]).fit()
    counter = EpochCounter()
    resumed = Session({"epochs": 4}, resume=split, plugins=[counter]).fit()
    print(f"resumed run: {resumed.status}, {counter.seen} epochs counted in all; "
          f"run.json says {json.loads((split / 'run.json').read_text())['status']}")

    Session({**config, "epochs": 4, "out": str(whole)}, overwrite=True).fit()
    a, b = load_checkpoint(split / "last.npz")[1], load_checkpoint(whole / "last.npz")[1]
    same = all(np.array_equal(a[k], b[k]) for k in a if k.startswith("model/"))
    print(f"resumed weights equal the uninterrupted run's, bit for bit: {same}")


if __name__ == "__main__":
    main()
