"""The PyTorch script that does what `trainkit run --model cnn` does, for whole-process timing
(benchmarks/whole_run.py): read MNIST's IDX files, hold out a seeded 10% for validation, train
the default convnet (the same network, in PyTorch's NCHW layout) with Adam (lr 1e-3) and a
cosine schedule per epoch at batch 64, validate after every epoch, save the model and optimizer
state, and score the test split.

    python benchmarks/torch_cnn.py --data-dir ../shared/data/mnist --threads 1 --epochs 1

It is written as a PyTorch user would write it for speed: the images are indexed from one
tensor (no ``DataLoader`` workers), evaluation runs under ``torch.no_grad`` in batches of 1000.
Needs ``pip install torch==2.13.0``; never a trainkit dependency.
"""

from __future__ import annotations

import argparse
import gzip
import tempfile
from pathlib import Path

import numpy as np


def torch_network(model: str = "cnn"):
    """trainkit's ``--model cnn`` (or the notebook's MLP) in PyTorch (NCHW for the convnet)."""
    from torch import nn

    if model == "cnn":
        return nn.Sequential(nn.Conv2d(1, 32, 5), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(32, 64, 5), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Dropout(0.25), nn.Flatten(), nn.Linear(1024, 128),
                             nn.BatchNorm1d(128), nn.ReLU(), nn.Dropout(0.25), nn.Linear(128, 10))
    return nn.Sequential(nn.Linear(784, 100), nn.Sigmoid(), nn.Linear(100, 10))


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzip-compressed) as a numpy array of unsigned bytes."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="folder of MNIST's *-ubyte.gz")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(42)
    images = torch.from_numpy(read_idx(args.data_dir / "train-images-idx3-ubyte.gz").copy())
    labels = torch.from_numpy(read_idx(args.data_dir / "train-labels-idx1-ubyte.gz").astype(np.int64))
    test_x = torch.from_numpy(read_idx(args.data_dir / "t10k-images-idx3-ubyte.gz").copy())
    test_y = torch.from_numpy(read_idx(args.data_dir / "t10k-labels-idx1-ubyte.gz").astype(np.int64))
    order = torch.randperm(len(labels))
    held_out = len(labels) // 10
    val_x, val_y = images[order[:held_out]], labels[order[:held_out]]
    train_x, train_y = images[order[held_out:]], labels[order[held_out:]]

    network = torch_network("cnn")
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    loss_fn = torch.nn.CrossEntropyLoss()

    def scaled(x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(1).float().div_(255)

    def evaluate(x_all: torch.Tensor, y_all: torch.Tensor) -> tuple[float, float]:
        network.eval()
        loss = correct = 0.0
        with torch.no_grad():
            for start in range(0, len(y_all), 1000):
                out = network(scaled(x_all[start:start + 1000]))
                y = y_all[start:start + 1000]
                loss += float(loss_fn(out, y)) * len(y)
                correct += int((out.argmax(1) == y).sum())
        return loss / len(y_all), correct / len(y_all)

    with tempfile.TemporaryDirectory() as out:
        for epoch in range(1, args.epochs + 1):
            network.train()
            shuffle = torch.randperm(len(train_y))
            total = correct = 0.0
            for start in range(0, len(train_y), 64):
                index = shuffle[start:start + 64]
                y = train_y[index]
                optimizer.zero_grad(set_to_none=True)
                output = network(scaled(train_x[index]))
                loss = loss_fn(output, y)
                loss.backward()
                optimizer.step()
                total += loss.item() * len(y)
                correct += int((output.argmax(1) == y).sum())
            schedule.step()
            val_loss, val_acc = evaluate(val_x, val_y)
            print(f"[{epoch}/{args.epochs}] loss: {total / len(train_y):.3f} "
                  f"acc: {correct / len(train_y):.3f} | val_loss: {val_loss:.3f} "
                  f"val_acc: {val_acc:.3f}")
            torch.save({"model": network.state_dict(), "optimizer": optimizer.state_dict(),
                        "epoch": epoch}, Path(out) / f"epoch-{epoch:03d}.pt")
        test_loss, test_acc = evaluate(test_x, test_y)
    print(f"test_loss: {test_loss:.4f} test_acc: {test_acc:.4f}")


if __name__ == "__main__":
    main()
