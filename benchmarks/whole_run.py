"""A whole `trainkit run --model cnn` process against a PyTorch script doing the same work
(benchmarks/torch_cnn.py): start-up, reading MNIST, training, validation, checkpoints and the
test score, each process timed from start to exit, with its peak RSS.

    python benchmarks/whole_run.py --data-dir ../shared/data/mnist            # 1 thread, 1 epoch
    python benchmarks/whole_run.py --data-dir ../shared/data/mnist --threads 2 --rounds 5

The two alternate (the order rotating each round); the ratio is the median of the rounds' ratios.
Each process runs under a small parent of its own, so that its peak RSS is its alone
(``getrusage(RUSAGE_CHILDREN)`` of a parent that waited for that one child).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def measured(command: list[str]) -> dict:
    """Wall seconds and peak RSS (MiB) of ``command``, run in a fresh parent process."""
    done = subprocess.run([sys.executable, str(Path(__file__)), "--measure", "--", *command],
                          capture_output=True, text=True)
    if done.returncode:
        sys.exit(done.stderr.strip() or done.stdout.strip())
    return json.loads(done.stdout.splitlines()[-1])


def measure_child(command: list[str]) -> None:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    peak_mib = peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS
    last = [line for line in done.stdout.splitlines() if "test_acc" in line][-1:]
    print(json.dumps({"seconds": seconds, "peak_mib": peak_mib, "last": last}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, help="folder of MNIST's *-ubyte.gz")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("command", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure_child(args.command)
        return
    if args.data_dir is None:
        parser.error("--data-dir is required")
    if importlib.util.find_spec("torch") is None:
        sys.exit("PyTorch is not installed: pip install torch==2.13.0")
    import torch

    with tempfile.TemporaryDirectory() as out:
        common = ["--threads", str(args.threads), "--epochs", str(args.epochs)]
        commands = {
            "trainkit": [sys.executable, "-m", "trainkit", "run", "--model", "cnn",
                         "--data-dir", str(args.data_dir), "--out", out, "--overwrite", *common],
            "pytorch": [sys.executable, str(HERE / "torch_cnn.py"), "--data-dir",
                        str(args.data_dir), *common],
        }
        runs: dict[str, list[dict]] = {name: [] for name in commands}
        for r in range(args.rounds):
            names = list(commands)[r % 2:] + list(commands)[:r % 2]
            for name in names:
                runs[name].append(measured(commands[name]))
    print(f"whole process, `--model cnn`, {args.epochs} epoch(s), {args.threads} thread(s), "
          f"median of {args.rounds} alternations; torch {torch.__version__}")
    medians = {}
    for name, results in runs.items():
        medians[name] = statistics.median(r["seconds"] for r in results)
        peak = max(r["peak_mib"] for r in results)
        print(f"  {name:9s} {medians[name]:7.2f} s   peak RSS {peak:6.0f} MiB   "
              f"{results[-1]['last']}")
    ratio = statistics.median(m["seconds"] / t["seconds"]
                              for m, t in zip(runs["trainkit"], runs["pytorch"]))
    print(f"  trainkit / PyTorch: {ratio:.3f} (target <= 0.85; the medians' own ratio "
          f"{medians['trainkit'] / medians['pytorch']:.3f})")


if __name__ == "__main__":
    main()
