"""Every hook trainkit calls, grouped: registration, lifecycle, checkpoint.

A plugin is any module or object with functions marked ``@trainkit.hookimpl`` whose names match the
specs below. An implementation may accept any subset of a spec's arguments (pluggy's rule), so
``def on_epoch_end(logs): ...`` is a valid implementation of ``on_epoch_end``.

Every lifecycle hook receives ``trainer`` (the loop: model, optimizer, state, history) and
``context``, the run's facts (``trainkit.loop.context.RunContext``: run folder, config, main-process
flag, BLAS threads and kernels): ``def on_fit_start(context): print(context.run_dir)``.

Wrappers (``@hookimpl(wrapper=True)``): trainkit calls ``on_exception``, ``on_save_checkpoint``,
``register_commands`` and every ``register_*`` hook one implementation at a time, so that one
that fails cannot keep the others from running; a wrapper implementation of one of these can
wrap nothing and is refused when its plugin registers, with a one-line warning naming the plugin
and the hook (each of these specs says "No wrapper"). Every other hook goes through pluggy, and
a wrapper of it runs as pluggy runs wrappers.

docs/plugins.md documents each hook with its exact signature; a test keeps the two in step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from trainkit.markers import hookspec

if TYPE_CHECKING:
    import click
    import numpy as np

    from trainkit.loop.context import RunContext
    from trainkit.loop.trainer import Batch, Trainer

#: The callback handed to every ``register_*`` hook: ``register(name, factory)``.
#: ``register_run_plugins`` also takes ``default=True`` for run plugins that are on unless turned off.
Register = Callable[..., None]


# --------------------------------------------------------------------------- registration hooks


@hookspec
def register_optimizers(register: Register) -> None:
    """Register optimizer factories: ``register("adam", Adam)``. No wrapper.

    A factory is a class (or callable) whose typed keyword parameters become CLI options, for
    example ``lr: float = 1e-3`` becomes ``--lr``. It returns an object with ``bind(params, grads)``,
    ``step()``, ``state_dict()``, ``load_state_dict(state)`` and a settable ``lr``.
    Chosen with ``trainkit run --optimizer NAME``.
    """


@hookspec
def register_losses(register: Register) -> None:
    """Register loss factories: ``register("cross-entropy", CrossEntropy)``. No wrapper.

    A loss has ``forward(outputs, targets) -> float`` and ``backward() -> gradient``.
    Chosen with ``--loss NAME``.
    """


@hookspec
def register_metrics(register: Register) -> None:
    """Register metric factories: ``register("accuracy", Accuracy)``. No wrapper.

    A metric is exact over an epoch (``trainkit.loop.metrics.Metric``): it has a ``name`` (the key it
    logs under, such as ``f1``), ``state_size(num_classes)``, ``update(state, outputs, targets)``
    adding a batch into its state, and ``compute(state, samples)``. The simple path: an object
    with a ``name`` called as ``metric(outputs, targets) -> float`` is taken as a batch mean
    (exact for accuracy, not for F1). Chosen with ``--metric NAME`` (repeatable).
    """


@hookspec
def register_datasets(register: Register) -> None:
    """Register dataset factories: ``register("mnist", MNIST)``. No wrapper.

    A dataset has ``load() -> trainkit.data.DatasetSplits``. Chosen with ``--dataset NAME``.
    """


@hookspec
def register_models(register: Register) -> None:
    """Register model factories: ``register("mlp", MLP)``. No wrapper.

    A model factory has ``build(input_size, num_classes, rng) -> trainkit.nn.Module``.
    Chosen with ``--model NAME``.
    """


@hookspec
def register_layers(register: Register) -> None:
    """Register layer types for the ``sequential`` model: ``register("conv2d", conv2d)``. No wrapper.

    A layer factory is called as ``factory(input_shape, rng, **options)``: ``input_shape`` is one
    sample's shape coming in (``(28, 28, 1)``, or ``(features,)``), ``rng`` a seeded
    ``np.random.Generator``, and its keyword parameters with defaults are the options a config
    file sets per layer (``{type = "conv2d", channels = 32}``). It returns a ``trainkit.nn.Module``
    whose ``output_shape`` says what comes out, raising ``trainkit.nn.ShapeError`` for an input
    it cannot take.
    """


@hookspec
def register_run_plugins(register: Register) -> None:
    """Register run plugins: ``register("checkpoint", Checkpoint, default=False)``. No wrapper.

    A run plugin is created once per run from its factory and registered with the plugin manager
    for that run, so its methods marked ``@hookimpl`` receive the lifecycle hooks. ``default=True``
    turns it on unless the user passes ``--no-plugin NAME``. Turned on with ``--plugin NAME``.
    (A plugin module is what an entry point loads; a run plugin is what it registers here.)
    """


@hookspec
def register_plugins(register: Register) -> None:
    """Deprecated: the old name of ``register_run_plugins``, which it still does (with a
    ``DeprecationWarning`` naming the plugin). No wrapper."""


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add click commands to the ``trainkit`` CLI: ``cli.add_command(my_command)``. No wrapper."""


# --------------------------------------------------------------------------- lifecycle hooks


@hookspec
def on_fit_start(trainer: Trainer, context: RunContext) -> None:
    """Called once when ``Trainer.fit`` starts, before the first epoch (also on resume)."""


@hookspec
def on_epoch_start(trainer: Trainer, context: RunContext, epoch: int) -> None:
    """Called at the start of every training epoch. ``epoch`` counts from 1."""


@hookspec
def on_batch_start(trainer: Trainer, context: RunContext, step: int, batch: Batch) -> None:
    """Called before the forward pass of every training batch.

    ``step`` is the batch's index within the epoch, from 0. ``batch`` is ``(inputs, targets)``; its
    arrays may be reused for the next batch, so copy what you keep.
    """


@hookspec
def on_before_optimizer_step(trainer: Trainer, context: RunContext, step: int) -> None:
    """Called after backward and before the optimizer step.

    ``trainer.model.grads`` is the flat gradient buffer: clip or all-reduce it in place here.
    ``trainer.batch_state`` is the batch's metric state (``[samples, loss * samples, metric
    states...]``, float64): a data-parallel plugin sums it across processes here too, and the
    batch's ``logs`` are then computed from it.
    """


@hookspec
def on_batch_end(trainer: Trainer, context: RunContext, step: int, batch: Batch,
                 logs: dict[str, float]) -> None:
    """Called after every training batch, after its optimizer step.

    With ``--accumulate N`` the optimizer steps on every N-th batch only (and on an epoch's
    last): ``trainer.optimizer_stepped`` says whether it did on this one, for a plugin that
    acts once per step (an average of the weights). ``logs`` holds this batch's ``loss`` and
    metrics (``acc``, ...). Do not keep the dict.
    """


@hookspec
def on_validation_start(trainer: Trainer, context: RunContext, epoch: int) -> None:
    """Called before the validation pass of an epoch."""


@hookspec
def on_validation_end(trainer: Trainer, context: RunContext, epoch: int, logs: dict[str, float]) -> None:
    """Called after the validation pass. ``logs`` holds ``val_loss`` and ``val_*`` metrics."""


@hookspec
def on_evaluation_state(trainer: Trainer, context: RunContext, state: np.ndarray,
                        prefix: str) -> None:
    """Called when a validation or test pass (``prefix`` ``"val_"``, ``"test_"``) has added up
    its metric state over the data this process scored, before the values are computed from it.

    A data-parallel plugin sums ``state`` (float64, ``[samples, loss * samples, metric
    states...]``) across its processes here, in place, so every metric is exact over the whole
    split. Other plugins read the values afterwards, in ``on_validation_end``/``on_test_end``.
    """


@hookspec
def on_epoch_end(trainer: Trainer, context: RunContext, epoch: int, logs: dict[str, float]) -> None:
    """Called at the end of every epoch with its train and validation metrics (and ``lr``).

    ``logs`` is the row that ``trainer.history`` records. A plugin may add keys to it.
    """


@hookspec
def on_train_end(trainer: Trainer, context: RunContext, reason: str) -> None:
    """Called once when the training epochs are over and training ended normally: ``reason`` is
    ``"completed"`` or the reason given to ``trainer.stop`` (``"early-stopping"``, ``"nan"``, ...).

    Runs before the test split is scored: a plugin that changes the final model (early stopping
    putting the best weights back) does it here, so that the test scores and ``final.npz`` are of
    the model the run hands over. Not called after Ctrl+C or a failure.
    """


@hookspec
def on_test_start(trainer: Trainer, context: RunContext) -> None:
    """Called before the test split is scored, once, after ``on_train_end``."""


@hookspec
def on_test_end(trainer: Trainer, context: RunContext, logs: dict[str, float]) -> None:
    """Called after the test split is scored. ``logs`` holds ``test_loss`` and ``test_*`` metrics;
    they are also added to the last row of ``trainer.history`` and kept in ``trainer.test_logs``.
    """


@hookspec
def on_fit_end(trainer: Trainer, context: RunContext, reason: str) -> None:
    """Called once when ``fit`` ends, whatever happened.

    ``reason`` is ``"completed"``, ``"stopped"`` (or the reason given to ``trainer.stop``, such as
    ``"early-stopping"`` or ``"nan"``), ``"interrupted"`` (Ctrl+C) or ``"failed"`` (an exception).
    """


@hookspec
def on_exception(trainer: Trainer, context: RunContext, exception: BaseException) -> None:
    """Called when training fails or is interrupted, before ``on_fit_end``. No wrapper.

    The model, optimizer and ``trainer.state`` are at the last consistent point: the end of the last
    completed optimizer step. The checkpoint plugin writes its emergency checkpoint here. Each
    implementation is called on its own.
    """


@hookspec(firstresult=True)
def on_message(trainer: Trainer, context: RunContext, message: str, level: str) -> bool | None:
    """Show a message of the run to its user; return ``True`` once shown.

    Every message trainkit has for the user during a run goes through here: warnings, Ctrl+C
    notices, the emergency checkpoint's path, a plugin's own notes (``trainer.say(...)``).
    ``level`` is ``"info"``, ``"warning"`` or ``"error"``; ``message`` is one line, starting
    ``trainkit:``. The first implementation that returns ``True`` wins (``firstresult``): the
    console plugin shows messages above the progress bar; a notebook plugin could show them in
    the notebook. With none, trainkit prints the message (to stderr unless ``level`` is info).
    """


# --------------------------------------------------------------------------- checkpoint hooks


@hookspec
def on_save_checkpoint(trainer: Trainer, context: RunContext, state: dict[str, Any]) -> None:
    """Add this plugin's own JSON-serialisable state to a checkpoint being written.

    ``state`` is shared by all plugins: store yours under your plugin's name, for example
    ``state["early-stopping"] = {"wait": 2, "best": 0.1}``. No wrapper: each implementation is
    called on its own.
    """


@hookspec
def on_load_checkpoint(trainer: Trainer, context: RunContext, state: dict[str, Any]) -> None:
    """Restore this plugin's state from a checkpoint, reading ``state[your plugin's name]``."""


#: Every hook a run calls, in the order this module declares them (lifecycle, messages,
#: checkpoint): the one list the recorder, ``trainkit plugins --hooks`` and the docs' test use.
RUN_HOOKS: tuple[str, ...] = tuple(
    name for name, value in list(globals().items())
    if callable(value) and name.startswith("on_") and hasattr(value, "trainkit_spec"))
