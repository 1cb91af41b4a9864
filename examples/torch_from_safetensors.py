"""Rebuild a trainkit model in PyTorch from its .safetensors export, and run it.

    trainkit export runs/cnn --format safetensors -o cnn.safetensors
    python examples/torch_from_safetensors.py cnn.safetensors images.npy --out logits.npy

``images.npy`` holds uint8 images as trainkit's dataset gave them, (N, 28, 28) for MNIST
(``trainkit.data.read_idx`` reads the IDX files). The file's metadata lists the layers
(``Conv2d(1, 32, 5x5)``, ``BatchNorm(32)``, ...), the classes and the input; this script
builds the same stack of ``torch.nn`` modules, converts trainkit's layouts (channels-last
images, ``(k, k, C_in, C_out)`` convolutions, ``(in, out)`` dense weights) to PyTorch's, and
writes the logits. PyTorch is not a trainkit dependency: install it to run this.
"""

from __future__ import annotations

import argparse
import json
import re

import numpy as np
import torch
from safetensors import safe_open
from safetensors.numpy import load_file


class ChannelsLastFlatten(torch.nn.Module):
    """trainkit flattens images in (H, W, C) order; PyTorch's tensors are (C, H, W)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 3, 1).flatten(1) if x.dim() == 4 else x


def build(layers: list[str], tensors: dict[str, np.ndarray]) -> torch.nn.Sequential:
    modules: list[torch.nn.Module] = []
    images = True  # before the first flatten, batch norm is over image channels
    for index, text in enumerate(layers):
        name, args = re.fullmatch(r"(\w+)(?:\((.*)\))?", text).groups()
        numbers = [int(n) for n in re.findall(r"(?<![=\w.])\d+", args or "")]
        options = dict(re.findall(r"(\w+)=(\d+)", args or ""))
        weight, bias = tensors.get(f"{index}.weight"), tensors.get(f"{index}.bias")
        if name == "Conv2d":
            c_in, c_out, k = numbers[:3]
            module = torch.nn.Conv2d(c_in, c_out, k, stride=int(options.get("stride", 1)),
                                     padding=int(options.get("padding", 0)), bias=bias is not None)
            module.weight.data = torch.from_numpy(weight.transpose(3, 2, 0, 1).copy())
        elif name == "Linear":
            module = torch.nn.Linear(*numbers[:2])
            module.weight.data = torch.from_numpy(weight.T.copy())
        elif name == "BatchNorm":
            module = (torch.nn.BatchNorm2d if images else torch.nn.BatchNorm1d)(numbers[0])
            module.weight.data = torch.from_numpy(tensors[f"{index}.gamma"])
            module.bias.data = torch.from_numpy(tensors[f"{index}.beta"])
            module.running_mean = torch.from_numpy(tensors[f"{index}.running_mean"])
            module.running_var = torch.from_numpy(tensors[f"{index}.running_var"])
        elif name in ("MaxPool2d", "AvgPool2d"):
            k = numbers[0]
            pool = torch.nn.MaxPool2d if name == "MaxPool2d" else torch.nn.AvgPool2d
            module = pool(k, stride=int(options.get("stride", k)))
        elif name == "Flatten":
            module, images = ChannelsLastFlatten(), False
        elif name == "Dropout":
            module = torch.nn.Dropout(float(args))
        else:
            module = {"ReLU": torch.nn.ReLU, "Sigmoid": torch.nn.Sigmoid,
                      "Tanh": torch.nn.Tanh}[name]()
        if bias is not None and name in ("Conv2d", "Linear"):
            module.bias.data = torch.from_numpy(bias)
        modules.append(module)
    return torch.nn.Sequential(*modules).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a .safetensors file written by trainkit export")
    parser.add_argument("images", help="a .npy file of uint8 images, (N, height, width)")
    parser.add_argument("--out", default="logits.npy", help="where to write the logits")
    args = parser.parse_args()
    with safe_open(args.model, "np") as f:
        meta = f.metadata()
    model = build(json.loads(meta["layers"]), load_file(args.model))
    images = np.load(args.images, allow_pickle=False)
    x = torch.from_numpy(images.astype(np.float32) / np.float32(255))  # as trainkit scales them
    shape = json.loads(meta["input_shape"])
    x = x.reshape(len(x), *shape, 1).permute(0, 3, 1, 2) if len(shape) == 2 else x
    if not isinstance(model[0], torch.nn.Conv2d):
        x = x.reshape(len(x), -1)
    with torch.no_grad():
        logits = model(x).numpy()
    np.save(args.out, logits)
    classes = json.loads(meta["class_names"])
    print(f"{len(logits)} inputs; first predictions: "
          f"{[classes[i] for i in logits.argmax(axis=1)[:10]]}; logits in {args.out}")


if __name__ == "__main__":
    main()
