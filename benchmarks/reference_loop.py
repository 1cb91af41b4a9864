"""The floor: the notebook's MLP (784-100-10 sigmoid, Adam, batch 64) trained by one hand-tuned
numpy function with no framework, every buffer preallocated and every operation in place.

trainkit's epoch time is measured against this (benchmarks/run.py). It computes the same maths as
trainkit (Glorot-uniform init, row-wise softmax cross-entropy, bias-corrected Adam, a new seeded
permutation every epoch, uint8 pixels converted one batch at a time), but nothing else.
"""

from __future__ import annotations

import math

import numpy as np


def train_reference(images: np.ndarray, labels: np.ndarray, *, epochs: int = 1, batch: int = 64,
                    hidden: int = 100, lr: float = 1e-3, seed: int = 0) -> list[float]:
    """Train and return the mean training loss of every epoch."""
    n, features = len(images), int(np.prod(images.shape[1:]))
    images = images.reshape(n, features)
    labels = labels.astype(np.intp)
    classes = int(labels.max()) + 1
    rng = np.random.default_rng(seed)
    sizes = [(features, hidden), (hidden,), (hidden, classes), (classes,)]
    total = sum(math.prod(s) for s in sizes)
    params, grads = np.zeros(total, np.float32), np.zeros(total, np.float32)
    views, gviews, offset = [], [], 0
    for shape in sizes:
        size = math.prod(shape)
        views.append(params[offset:offset + size].reshape(shape))
        gviews.append(grads[offset:offset + size].reshape(shape))
        offset += size
    w1, b1, w2, b2 = views
    gw1, gb1, gw2, gb2 = gviews
    w1[...] = rng.uniform(-1, 1, w1.shape) * math.sqrt(6 / (features + hidden))
    w2[...] = rng.uniform(-1, 1, w2.shape) * math.sqrt(6 / (hidden + classes))
    m_sum, v_sum, s = np.zeros_like(params), np.zeros_like(params), np.empty_like(params)
    b1_, b2_, eps = 0.9, 0.999, 1e-8

    buffers = {}

    def buffers_for(size):
        if size not in buffers:
            buffers[size] = (np.empty((size, features), np.uint8), np.empty((size, features), np.float32),
                             np.empty((size, hidden), np.float32), np.empty((size, hidden), np.float32),
                             np.empty((size, classes), np.float32), np.arange(size))
        return buffers[size]

    scale = np.float32(1 / 255)
    t = 0
    losses = []
    for _ in range(epochs):
        order = rng.permutation(n)
        loss_sum = 0.0
        for start in range(0, n, batch):
            index = order[start:start + batch]
            size = len(index)
            xu, x, h, dh, z, rows = buffers_for(size)
            y = labels[index]
            np.take(images, index, axis=0, out=xu)
            np.multiply(xu, scale, out=x)
            np.matmul(x, w1, out=h)
            h += b1
            h *= 0.5  # sigmoid(a) = (1 + tanh(a / 2)) / 2: numpy's tanh is vectorised
            np.tanh(h, out=h)
            h *= 0.5
            h += 0.5
            np.matmul(h, w2, out=z)
            z += b2
            z -= z.max(axis=1, keepdims=True)
            np.exp(z, out=z)
            z /= z.sum(axis=1, keepdims=True)
            loss_sum -= float(np.log(z[rows, y]).sum())
            z[rows, y] -= 1.0
            z *= np.float32(1.0 / size)
            np.matmul(h.T, z, out=gw2)
            np.sum(z, axis=0, out=gb2)
            np.matmul(z, w2.T, out=dh)
            dh *= h
            h -= 1.0
            dh *= h
            np.negative(dh, out=dh)
            np.matmul(x.T, dh, out=gw1)
            np.sum(dh, axis=0, out=gb1)
            t += 1
            m_sum *= b1_  # the moments without their (1 - beta) factors, folded into k below
            m_sum += grads
            v_sum *= b2_
            np.multiply(grads, grads, out=s)
            v_sum += s
            k = math.sqrt((1 - b2_) / (1 - b2_**t))
            np.sqrt(v_sum, out=s)
            s += eps / k
            np.divide(m_sum, s, out=s)
            s *= lr * (1 - b1_) / ((1 - b1_**t) * k)
            params -= s
        losses.append(loss_sum / n)
    return losses
