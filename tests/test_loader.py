"""The DataLoader: a new seeded order every epoch, float32 batches made one at a time."""

from __future__ import annotations

import numpy as np

from trainkit.data import DataLoader


def make(n=10, batch=4, seed=0, **kw):
    images = np.arange(n * 4, dtype=np.uint8).reshape(n, 2, 2)
    return DataLoader(images, np.arange(n), batch, rng=np.random.default_rng(seed), **kw)


def epoch_labels(loader) -> list[int]:
    return [int(v) for _, y in loader for v in y]


def test_reshuffles_every_epoch():
    # The notebook's loader shuffled once, at construction: every epoch saw the same order.
    loader = make(n=50, shuffle=True)
    first, second = epoch_labels(loader), epoch_labels(loader)
    assert sorted(first) == sorted(second) == list(range(50))
    assert first != second


def test_same_seed_same_orders():
    a, b = make(n=30, shuffle=True, seed=7), make(n=30, shuffle=True, seed=7)
    assert [epoch_labels(a) for _ in range(3)] == [epoch_labels(b) for _ in range(3)]


def test_no_shuffle_keeps_order_and_last_batch_is_partial():
    loader = make(n=10, batch=4)
    sizes = [len(y) for _, y in loader]
    assert sizes == [4, 4, 2] and len(loader) == 3
    assert epoch_labels(loader) == list(range(10))
    assert len(make(n=10, batch=4, drop_last=True)) == 2


def test_batches_are_float32_in_unit_range_and_flattened():
    x, y = next(iter(make(n=4, batch=2)))
    assert x.dtype == np.float32 and x.shape == (2, 4)
    np.testing.assert_allclose(x[0], np.arange(4) / 255, rtol=1e-6)
    assert y.dtype == np.intp


def test_resume_epoch_redraws_the_same_order():
    loader = make(n=40, batch=8, shuffle=True, seed=3)
    loader.new_epoch()
    order = loader.new_epoch()
    state = loader.epoch_rng_state
    after = loader.rng.bit_generator.state
    resumed = make(n=40, batch=8, shuffle=True, seed=99)
    np.testing.assert_array_equal(resumed.resume_epoch(state), order)
    assert resumed.rng.bit_generator.state == after
    rest = [y.tolist() for _, y in resumed.batches(order, first_sample=16)]
    assert rest == [order[i * 8:(i + 1) * 8].tolist() for i in range(2, 5)]


def test_a_subset_serves_only_its_samples_without_copying_them():
    images = np.arange(20, dtype=np.uint8).reshape(10, 2)
    labels = np.arange(10)
    loader = DataLoader(images, labels, 3, subset=np.array([1, 4, 5, 8]))
    assert loader.images is images or np.shares_memory(loader.images, images)
    served = [(x.copy(), y.tolist()) for x, y in loader.batches(np.arange(4))]
    assert [y for _, y in served] == [[1, 4, 5], [8]]
    np.testing.assert_array_equal(served[1][0], images[[8]] / np.float32(255))
    part = loader.part(1, 3)
    assert [y.tolist() for _, y in part.batches(np.arange(2))] == [[4, 5]]


def test_limit_batches_caps_an_epoch_and_a_resumed_one():
    import numpy as np

    from trainkit.data import DataLoader

    loader = DataLoader(np.zeros((100, 4), np.uint8), np.zeros(100, np.uint8), 8)
    assert len(loader) == 13
    loader.limit_batches = 3
    assert len(loader) == 3
    assert [len(y) for _, y in loader] == [8, 8, 8]
    assert loader.batches_left(8) == 2 and loader.batches_left(24) == 0
    loader.limit_batches = 50
    assert len(loader) == 13
