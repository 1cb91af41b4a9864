"""SIGKILL at random moments while a real child process saves: the latest checkpoint always loads."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

from trainkit.persist.checkpoint_io import load_checkpoint

CHILD = r"""
import sys, numpy as np
from pathlib import Path
from trainkit.persist.checkpoint_io import save_checkpoint
out = Path(sys.argv[1])
rng = np.random.default_rng(int(sys.argv[2]))
i = 0
while True:
    arrays = {"model/w": rng.standard_normal(500_000).astype(np.float32),
              "optimizer/m": np.full(200_000, i, np.float32)}
    save_checkpoint(out / "last.npz", arrays, {"i": i})
    if i == 0:
        print("saved", flush=True)
    i += 1
"""


def test_sigkill_during_saves_never_leaves_an_unreadable_checkpoint(tmp_path):
    rng = random.Random(0)
    last_seen = -1
    for attempt in range(15):
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path), str(attempt)],
                                 stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip() == "saved"
        time.sleep(rng.uniform(0.0, 0.15))
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        manifest, arrays = load_checkpoint(tmp_path / "last.npz")  # verifies every SHA-256
        assert (arrays["optimizer/m"] == manifest["i"]).all()
        last_seen = max(last_seen, manifest["i"])
    assert last_seen > 0  # the kills did land in the middle of later saves
