"""Exported models against trainkit on the whole MNIST test set: do ONNX Runtime's outputs
equal ``trainkit predict``'s, and how long does each take per 10,000 images?

    python benchmarks/export.py RUN [RUN ...] [--data-dir ../shared/data/mnist] [--threads 1]

Each RUN is a trained run folder (``trainkit run --model cnn --out runs/cnn``). For each, the
script exports the model to ONNX, scores the 10,000 test images with trainkit (the code behind
``trainkit predict``, batch 256) and with an ONNX Runtime session (one call), alternating
five times, and prints the largest difference of the logits, the number of images whose
class differs, and the median times. Both run on ``--threads`` threads (BLAS's, trainkit's
and ONNX Runtime's intra-op threads).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

import trainkit
from trainkit.data import read_idx
from trainkit.session.threads import using_threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data/mnist"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    images = read_idx(args.data_dir / "t10k-images-idx3-ubyte.gz")
    print("| run | model | max abs logit diff | classes differing | trainkit s/10k | "
          "ONNX Runtime s/10k | ORT / trainkit |")
    print("|---|---|---|---|---|---|---|")
    for run in args.runs:
        model = trainkit.load(run)
        with tempfile.TemporaryDirectory() as folder:
            path = model.export(Path(folder) / "model.onnx")
            options = ort.SessionOptions()
            options.intra_op_num_threads = args.threads
            options.inter_op_num_threads = 1
            session = ort.InferenceSession(str(path), options)
        ours_times, ort_times = [], []
        with using_threads(args.threads, getattr(model.model, "splits_batch", False)):
            for _ in range(args.rounds):
                start = time.perf_counter()
                ours = model.logits(images)
                ours_times.append(time.perf_counter() - start)
                start = time.perf_counter()
                (theirs,) = session.run(["logits"], {"input": images})
                ort_times.append(time.perf_counter() - start)
        ours_s, ort_s = statistics.median(ours_times), statistics.median(ort_times)
        differ = int((ours.argmax(axis=1) != theirs.argmax(axis=1)).sum())
        print(f"| {run} | {model.manifest['config']['model']} | "
              f"{float(np.abs(ours - theirs).max()):.2e} | {differ} | {ours_s:.3f} | "
              f"{ort_s:.3f} | {ort_s / ours_s:.2f} |")


if __name__ == "__main__":
    main()
