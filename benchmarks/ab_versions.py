"""Two trainkit versions against each other, alternating whole runs on real MNIST: the MLP (1
thread, 400 batches) and the cnn (2 threads, 60 batches), one epoch each, whole-process time.

Each version is installed (not editable) in a venv of its own, and the command runs from
outside the repository (the working folder comes first on sys.path):

    git worktree add /tmp/old <commit>
    python -m venv /tmp/oldenv && /tmp/oldenv/bin/pip install /tmp/old
    python -m venv /tmp/newenv && /tmp/newenv/bin/pip install .
    cd /tmp && python /path/to/benchmarks/ab_versions.py 5

Used when a change should not move speed at all (a restructuring): the ratio must sit in the
noise around 1. Speed claims against PyTorch come from run.py."""
import os
import statistics
import subprocess
import sys
import tempfile
import time

DATA = os.environ.get("TRAINKIT_MNIST", "../shared/data/mnist")
ENVS = {"old": os.environ.get("OLD_TRAINKIT", "/tmp/oldenv/bin/trainkit"),
        "new": os.environ.get("NEW_TRAINKIT", "/tmp/newenv/bin/trainkit")}
RUNS = {"mlp": ["--model", "mlp", "--limit-batches", "400", "--threads", "1"],
        "cnn": ["--model", "cnn", "--limit-batches", "60", "--threads", "2"]}
rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
times = {(m, e): [] for m in RUNS for e in ENVS}
for r in range(rounds):
    for model, args in RUNS.items():
        for env in (ENVS if r % 2 == 0 else list(reversed(ENVS))):
            with tempfile.TemporaryDirectory() as out:
                start = time.perf_counter()
                subprocess.run([ENVS[env], "run", "--data-dir", DATA, "--epochs", "1", "--seed", "1",
                                "--out", f"{out}/r", "--no-plugin", "progress", *args],
                               check=True, capture_output=True, cwd=out)
                times[model, env].append(time.perf_counter() - start)
for model in RUNS:
    old, new = statistics.median(times[model, "old"]), statistics.median(times[model, "new"])
    print(f"{model}: old {old:.2f} s, new {new:.2f} s, new/old {new / old:.3f} "
          f"(whole process, median of {rounds}; old {[round(t, 2) for t in times[model, 'old']]}, "
          f"new {[round(t, 2) for t in times[model, 'new']]})")
