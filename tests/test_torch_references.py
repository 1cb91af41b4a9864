"""Day-two components against PyTorch's own values and gradients: weight decay in SGD,
momentum and Adam, RMSprop, cross-entropy's label smoothing and class weights, and the
leaky-relu, gelu (exact and tanh) and softmax layers.

PyTorch is never a dependency: its results on fixed inputs are stored in
``torch_references.json`` and compared with trainkit's here. Where torch is installed the test
also recomputes them live, and ``python tests/test_torch_references.py`` rewrites the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

STORED = Path(__file__).with_name("torch_references.json")

OPTIMIZERS = {  # name: (trainkit factory, options, torch class name, torch options)
    "sgd-wd": ("sgd", {"lr": 0.1, "weight_decay": 0.01}, "SGD", {"lr": 0.1, "weight_decay": 0.01}),
    "momentum-wd": ("momentum", {"lr": 0.1, "weight_decay": 0.01}, "SGD",
                    {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01}),
    "nesterov-wd": ("momentum", {"lr": 0.1, "nesterov": True, "weight_decay": 0.01}, "SGD",
                    {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    "adam-wd": ("adam", {"lr": 0.01, "weight_decay": 0.05}, "Adam",
                {"lr": 0.01, "weight_decay": 0.05}),
    "rmsprop": ("rmsprop", {"lr": 0.01}, "RMSprop", {"lr": 0.01}),
    "rmsprop-momentum-wd": ("rmsprop", {"lr": 0.01, "alpha": 0.9, "momentum": 0.8,
                                        "weight_decay": 0.02}, "RMSprop",
                            {"lr": 0.01, "alpha": 0.9, "momentum": 0.8, "weight_decay": 0.02}),
}
LOSSES = {"smoothing": (0.1, ""), "weights": (0.0, "1,2,0.5,3"),
          "smoothing-weights": (0.2, "1,2,0.5,3")}
LAYERS = {"leaky-relu": {"negative_slope": 0.1}, "gelu": {}, "gelu-tanh": {"approximate": "tanh"},
          "softmax": {}}


def inputs():
    rng = np.random.default_rng(0)
    return {"params": rng.normal(size=40).astype(np.float32),
            "grads": [rng.normal(size=40).astype(np.float32) for _ in range(5)],
            "logits": (rng.normal(size=(9, 4)) * 3).astype(np.float32),
            "labels": rng.integers(0, 4, 9),
            "x": (rng.normal(size=(5, 7)) * 2).astype(np.float32),
            "upstream": rng.normal(size=(5, 7)).astype(np.float32)}


def torch_results() -> dict:
    import torch

    data, out = inputs(), {"optimizers": {}, "losses": {}, "layers": {}}
    for case, (_, _, klass, options) in OPTIMIZERS.items():
        p = torch.tensor(data["params"].copy(), requires_grad=True)
        optimizer = getattr(torch.optim, klass)([p], **options)
        for g in data["grads"]:
            p.grad = torch.tensor(g)
            optimizer.step()
        out["optimizers"][case] = p.detach().numpy().tolist()
    for case, (smoothing, weights) in LOSSES.items():
        z = torch.tensor(data["logits"], requires_grad=True)
        options = {"label_smoothing": smoothing}
        if weights:
            options["weight"] = torch.tensor([float(w) for w in weights.split(",")])
        loss = torch.nn.CrossEntropyLoss(**options)(z, torch.tensor(data["labels"]))
        loss.backward()
        out["losses"][case] = {"loss": loss.item(), "grad": z.grad.numpy().tolist()}
    modules = {"leaky-relu": torch.nn.LeakyReLU(0.1), "gelu": torch.nn.GELU(),
               "gelu-tanh": torch.nn.GELU(approximate="tanh"), "softmax": torch.nn.Softmax(-1)}
    for case, module in modules.items():
        x = torch.tensor(data["x"], requires_grad=True)
        y = module(x)
        y.backward(torch.tensor(data["upstream"]))
        out["layers"][case] = {"y": y.detach().numpy().tolist(), "dx": x.grad.numpy().tolist()}
    return out


def references() -> list[dict]:
    found = [json.loads(STORED.read_text())]
    try:
        found.append(torch_results())
    except ImportError:
        pass
    return found


@pytest.mark.parametrize("case", sorted(OPTIMIZERS))
def test_optimizers_match_pytorch(case):
    from trainkit.plugin.manager import get_plugin_manager
    from trainkit.plugin.registry import Registry

    name, options, _, _ = OPTIMIZERS[case]
    factory = Registry.collect(get_plugin_manager()).get("optimizer", name).factory
    data = inputs()
    optimizer = factory(**options)
    params, grads = data["params"].copy(), np.empty(40, np.float32)
    optimizer.bind(params, grads)
    for g in data["grads"]:
        grads[...] = g
        optimizer.step()
    for reference in references():
        np.testing.assert_allclose(params, reference["optimizers"][case], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("case", sorted(LOSSES))
def test_cross_entropy_smoothing_and_weights_match_pytorch(case):
    from trainkit.plugins.losses import CrossEntropy

    data = inputs()
    loss = CrossEntropy(*LOSSES[case])
    value = loss.forward(data["logits"].copy(), data["labels"])
    grad = loss.backward()
    for reference in references():
        assert value == pytest.approx(reference["losses"][case]["loss"], rel=1e-5)
        np.testing.assert_allclose(grad, reference["losses"][case]["grad"], atol=1e-6)


@pytest.mark.parametrize("case", sorted(LAYERS))
def test_new_activations_match_pytorch(case):
    from trainkit.nn import GELU, LeakyReLU, Softmax

    layer = {"leaky-relu": LeakyReLU, "gelu": GELU, "gelu-tanh": GELU,
             "softmax": Softmax}[case](**LAYERS[case])
    data = inputs()
    y = layer.forward(data["x"].copy())
    dx = layer.backward(data["upstream"].copy())
    assert y.dtype == dx.dtype == np.float32
    for reference in references():
        np.testing.assert_allclose(y, reference["layers"][case]["y"], atol=1e-6)
        np.testing.assert_allclose(dx, reference["layers"][case]["dx"], atol=1e-6)


if __name__ == "__main__":
    STORED.write_text(json.dumps(torch_results(), indent=1) + "\n")
    print(f"wrote {STORED}")
