"""ema: an exponential moving average of the weights, as timm's ``ModelEmaV3``.

After every optimizer step, ``average = d * average + (1 - d) * weights`` over the parameters
and the state arrays (batch norm's running statistics: timm averages every buffer too). The
decay warms up as timm's does, ``d = min(decay, 1 - (1 + step) ** -power)``, so the random
first weights fade fast. With ``evaluate`` (the default) validation and the test split are
scored with the average, and every checkpoint (``best.npz``, ``last.npz``, ``final.npz``)
holds the average as its model: ``evaluate``, ``predict`` and ``export`` use it. The training
weights travel in this plugin's checkpoint state, so a resume goes on training them exactly.
"""

from __future__ import annotations

from trainkit import hookimpl
from trainkit.lazy import lazy_import

np = lazy_import("numpy")


class EMA:
    """Keep an exponential moving average of the weights; score and save it.

    Args:
        decay: the average's decay at full strength.
        warmup: warm the decay up as timm does, 1 - (1 + step) ** -power.
        power: the warm-up's power (timm's 2/3 for long runs, 3/4 for short ones).
        evaluate: validate, test and save the models with the averaged weights.
    """

    def __init__(self, decay: float = 0.999, warmup: bool = True, power: float = 0.75,
                 evaluate: bool = True) -> None:
        from trainkit.errors import ConfigError

        if not 0 < decay < 1:
            raise ConfigError(f"decay must be in (0, 1), got {decay}", "decay")
        if not power > 0:
            raise ConfigError(f"power must be above 0, got {power}", "power")
        self.name, self.decay, self.warmup, self.power = "ema", decay, warmup, power
        self.evaluate = evaluate
        self.average = None  # float32: the parameters, then the state arrays
        self.updates = 0
        self._held = None  # the training weights while the model holds the average

    def decay_at(self, step: int) -> float:
        """timm's ``get_decay``: the decay for the ``step``-th update (from 1)."""
        if not self.warmup:
            return self.decay
        return max(min(1 - (1 + step) ** -self.power, self.decay), 0.0)

    @staticmethod
    def weights(model):
        return np.concatenate([model.params, model.states]) if model.states.size else \
            model.params.copy()

    @staticmethod
    def put(model, values) -> None:
        model.params[...] = values[:model.params.size]
        model.states[...] = values[model.params.size:]

    @hookimpl
    def on_fit_start(self, trainer):
        if self.average is None:
            self.average = self.weights(trainer.model)

    @hookimpl
    def on_batch_end(self, trainer):
        """After the optimizer step: the average moves towards the new weights (a lerp). Once
        per step: with ``--accumulate`` not between two micro-batches (timm and Lightning
        also average per optimizer step)."""
        if not trainer.optimizer_stepped:
            return
        self.updates += 1
        model, average = trainer.model, self.average
        rate = np.float32(1 - self.decay_at(self.updates))
        size = model.params.size
        # average += rate * (weights - average), in place: one step's temporaries of the
        # model's size page-faulted on every batch
        from trainkit.nn.schedule import scratch

        steps = scratch(self, "step", average.shape, average.dtype)
        for weights, part, step in ((model.params, average[:size], steps[:size]),
                                    (model.states, average[size:], steps[size:])):
            if weights.size:
                np.subtract(weights, part, out=step)
                step *= rate
                part += step

    def swap_in(self, trainer) -> None:
        """The model takes the average; the training weights are held here."""
        if self.evaluate and self._held is None and self.average is not None:
            self._held = self.weights(trainer.model)
            self.put(trainer.model, self.average)

    def swap_out(self, trainer) -> None:
        if self._held is not None:
            self.put(trainer.model, self._held)
            self._held = None

    @hookimpl
    def on_validation_start(self, trainer):
        self.swap_in(trainer)

    @hookimpl
    def on_validation_end(self, trainer):
        self.swap_out(trainer)

    @hookimpl(tryfirst=True)
    def on_epoch_end(self, trainer):
        """The checkpoints written at the end of an epoch hold the average as their model
        (until the next epoch starts)."""
        self.swap_in(trainer)

    @hookimpl
    def on_epoch_start(self, trainer):
        self.swap_out(trainer)

    @hookimpl
    def on_train_end(self, trainer):
        """The trained model is the average from here on: the test split, final.npz and
        whatever the caller does with the model."""
        self.swap_in(trainer)

    @hookimpl
    def on_save_checkpoint(self, state):
        held = self._held is not None  # the model holds the average, training weights here
        other = self._held if held else self.average
        state[self.name] = {"updates": self.updates, "model_holds_average": held,
                            "other": None if other is None else other.copy()}

    @hookimpl
    def on_load_checkpoint(self, trainer, state):
        saved = state.get(self.name)
        if not saved or saved.get("other") is None:
            return
        self.updates = int(saved["updates"])
        other = np.asarray(saved["other"], np.float32)
        if saved["model_holds_average"]:  # back to training the training weights
            self.average = self.weights(trainer.model)
            self.put(trainer.model, other)
        else:
            self.average = other.copy()
        self._held = None


@hookimpl
def register_run_plugins(register):
    register("ema", EMA)
