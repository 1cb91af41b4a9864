"""swa: stochastic weight averaging, as PyTorch's ``torch.optim.swa_utils``.

From epoch ``start`` on, the optimizer trains at its own constant lr (``lr``: PyTorch's
``SWALR`` with no annealing; it takes over from the run's lr schedule, as Lightning's callback
does) and, at the end of every epoch, the parameters join an equal average (``AveragedModel``:
``average += (weights - average) / (n + 1)``). When training ends
the model takes the average, and batch norm's running statistics are recomputed over the
training data as ``update_bn`` does: one pass in training mode, each layer's statistics the
cumulative mean over the batches. The test split, ``final.npz``, ``evaluate`` and ``predict``
then use the averaged model. The average goes into checkpoints, so a resume is exact.
"""

from __future__ import annotations

from trainkit import hookimpl
from trainkit.lazy import lazy_import

np = lazy_import("numpy")


class SWA:
    """Average the weights of the last epochs, at their own lr; recompute batch norm's
    statistics at the end.

    Args:
        start: the first epoch whose weights join the average.
        lr: the learning rate from that epoch on (0: keep the run's).
    """

    def __init__(self, start: int = 5, lr: float = 0.0) -> None:
        from trainkit.errors import ConfigError

        if start < 1:
            raise ConfigError(f"start must be an epoch number from 1, got {start}", "start")
        if lr < 0:
            raise ConfigError(f"lr must be 0 (the run's) or above, got {lr}", "lr")
        self.name, self.start, self.lr = "swa", int(start), float(lr)
        self.average = None
        self.averaged = 0

    # Both after every other plugin's (``trylast``): from ``start`` on the lr is this plugin's,
    # whatever schedule the run has, per epoch or per step (Lightning's SWA callback replaces
    # the run's schedulers with SWALR at that epoch).
    @hookimpl(trylast=True)
    def on_epoch_start(self, trainer, epoch):
        self.set_lr(trainer, epoch)

    @hookimpl(trylast=True)
    def on_batch_start(self, trainer):
        self.set_lr(trainer, trainer.state.epoch + 1)  # state.epoch: the last one completed

    def set_lr(self, trainer, epoch: int) -> None:
        if self.lr and epoch >= self.start:
            trainer.optimizer.lr = self.lr

    @hookimpl
    def on_epoch_end(self, trainer, epoch):
        if epoch < self.start:
            return
        params = trainer.model.params
        if self.average is None:
            self.average = params.copy()
        else:
            self.average += (params - self.average) / np.float32(self.averaged + 1)
        self.averaged += 1

    @hookimpl
    def on_train_end(self, trainer, reason):
        if self.average is None or reason in ("interrupted", "failed", "nan"):
            return
        trainer.model.params[...] = self.average
        update_bn(trainer.model, trainer.train_loader)

    @hookimpl
    def on_save_checkpoint(self, state):
        state[self.name] = {"averaged": self.averaged,
                            "average": None if self.average is None else self.average.copy()}

    @hookimpl
    def on_load_checkpoint(self, state):
        saved = state.get(self.name)
        if saved and saved.get("average") is not None:
            self.average = np.asarray(saved["average"], np.float32).copy()
            self.averaged = int(saved["averaged"])


def update_bn(model, loader) -> None:
    """``torch.optim.swa_utils.update_bn``: batch norm's running statistics recomputed as the
    cumulative mean over one pass of ``loader`` in training mode (in file order)."""
    from trainkit.nn import BatchNorm

    layers = [layer for layer in getattr(model, "layers", []) if isinstance(layer, BatchNorm)]
    if not layers:
        return
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.running_mean[...] = 0
        layer.running_var[...] = 1
    data = loader.part(0, len(loader.labels))
    training = getattr(model, "training", True)
    model.train(True)
    try:
        for batches, (x, _) in enumerate(data.batches(np.arange(len(data.labels))), 1):
            for layer in layers:  # the cumulative mean: batch k weighs 1/k
                layer.momentum = np.float32(1 / batches)
            model.forward(x)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
        model.train(training)


@hookimpl
def register_run_plugins(register):
    register("swa", SWA)
