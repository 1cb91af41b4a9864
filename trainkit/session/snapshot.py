"""A trainer's complete state as named arrays plus JSON, and back.

This is what a checkpoint holds: the model's parameters and state arrays (batch norm's running
statistics) and its extra state (dropout's random generators), the optimizer's buffers and counters, the
loop's position (epoch, step, the data order's random state, the partial epoch sums), the history,
the run's config and every plugin's own state. Restoring it and calling ``fit`` again continues the
run bit-exactly.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from trainkit.errors import CheckpointError, PluginError, PluginProblem

#: How a plugin's array is referred to in the JSON manifest: {"__array__": "plugins/<name>/<key>"}.
ARRAY_REF = "__array__"


def capture(trainer, leave_out: tuple[str, ...] = ()) -> tuple[dict[str, np.ndarray],
                                                                dict[str, Any]]:
    """``(arrays, manifest)`` describing ``trainer`` at its last consistent point, without the
    state of the plugins in ``leave_out``."""
    arrays = {f"model/{name}": value for name, value in trainer.model.state_dict().items()}
    accumulated = trainer.accumulation.state() if trainer.accumulation is not None else None
    if accumulated and accumulated["total"] is not None:  # between two optimizer steps
        arrays["accumulated"] = accumulated["total"]
    optimizer_scalars = {}
    for key, value in trainer.optimizer.state_dict().items():
        if isinstance(value, np.ndarray):
            arrays[f"optimizer/{key}"] = value
        else:
            optimizer_scalars[key] = value
    plugin_state, owners = plugin_states(trainer, leave_out)
    for plugin, mine in plugin_state.items():  # arrays in a plugin's state go to the .npz
        if isinstance(mine, dict):
            for key, value in mine.items():
                if isinstance(value, np.ndarray):
                    arrays[f"plugins/{plugin}/{key}"] = value
                    mine[key] = {ARRAY_REF: f"plugins/{plugin}/{key}"}
        problem = not_json(mine, f"state[{plugin!r}]")
        if problem:
            raise PluginError(owners.get(plugin, "unknown"), "on_save_checkpoint", PluginProblem(
                f"{problem}, which a checkpoint cannot hold: store JSON values (dict, list, str, "
                f"int, float, bool, None) and numpy arrays directly under your key"))
    loader = trainer.train_loader
    manifest = {
        "config": trainer.context.config,
        "epoch": trainer.state.epoch,
        "global_step": trainer.state.global_step,
        "state": trainer.state.to_json(),
        "data_rng_state": copy.deepcopy(loader.rng.bit_generator.state) if loader else None,
        "threads": trainer.context.threads,
        "blas_threads": trainer.context.blas_threads,
        "blas_kernels": trainer.context.blas_kernels,
        "accumulated": accumulated["count"] if accumulated else 0,
        "optimizer": optimizer_scalars,
        "model_extra": getattr(trainer.model, "extra_state", dict)(),
        "history": trainer.history.rows,
        "plugins": plugin_state,
        "components": trainer.context.component_sources,
        # what the model takes and gives, so that it can predict without the dataset's files
        "data": {"image_shape": list(trainer.context.image_shape or ()) or None,
                 "class_names": list(trainer.context.class_names or ()) or None,
                 "task": trainer.context.task,
                 "outputs": trainer.context.outputs,
                 "preprocessing": trainer.context.preprocessing,
                 "input_range": list(trainer.context.input_range) if trainer.context.input_range else None},
    }
    return arrays, manifest


def plugin_states(trainer, leave_out: tuple[str, ...] = ()) -> tuple[dict[str, Any],
                                                                    dict[str, str]]:
    """Every plugin's ``on_save_checkpoint`` state, and which plugin stored each key: each
    implementation is called on its own, in pluggy's order, so that a mistake in one plugin's
    state names that plugin."""
    from trainkit.plugin.dispatch import RUN_PLUGIN_PREFIX, each_implementation

    state: dict[str, Any] = {}
    owners: dict[str, str] = {}
    before: dict[str, int] = {}
    hook = trainer.plugin_manager.subset_hook_caller(
        "on_save_checkpoint", [trainer.plugin_manager.get_plugin(RUN_PLUGIN_PREFIX + name) or
                               trainer.plugin_manager.get_plugin(name) for name in leave_out])
    for impl, error in each_implementation(hook, trainer=trainer, context=trainer.context,
                                             state=state):
        plugin = impl.plugin_name.removeprefix(RUN_PLUGIN_PREFIX)
        if error is not None:
            raise PluginError(plugin, "on_save_checkpoint", error) from error
        owners.update({key: plugin for key, value in state.items() if before.get(key) != id(value)})
        before = {key: id(value) for key, value in state.items()}
    return state, owners


def not_json(value: Any, path: str) -> str | None:
    """Where ``value`` holds something JSON cannot (an array reference is fine), or ``None``."""
    if value is None or isinstance(value, (str, bool, int, float)):  # numpy's float64 too
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{path} has the key {key!r} ({type(key).__name__}, not a string)"
            problem = not_json(item, f"{path}[{key!r}]")
            if problem:
                return problem
        return None
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            problem = not_json(item, f"{path}[{i}]")
            if problem:
                return problem
        return None
    kind = type(value)
    return f"{path} is a {kind.__module__}.{kind.__qualname__}" if kind.__module__ != "builtins" \
        else f"{path} is a {kind.__qualname__}"


def restore_model(model, manifest: dict[str, Any], arrays: dict[str, np.ndarray],
                  source: str = "") -> None:
    """Put the checkpoint's weights and model state (batch norm's statistics, dropout's
    generators) into ``model``; a model of another shape is one ``CheckpointError``."""
    weights = {k.removeprefix("model/"): v for k, v in arrays.items() if k.startswith("model/")}
    try:
        model.load_state_dict(weights)
        extra = manifest.get("model_extra") or {}
        if extra or hasattr(model, "load_extra_state"):
            model.load_extra_state(extra)
    except ValueError as e:
        where = f"{source}: " if source else ""
        raise CheckpointError(f"{where}checkpoint was made for another model: {e}") from None


def restore(trainer, manifest: dict[str, Any], arrays: dict[str, np.ndarray], source: str = "") -> None:
    """Put ``trainer`` back in the state ``capture`` saw. ``source`` names the file in errors."""
    from trainkit.loop.trainer import EpochLog, TrainState

    where = f"{source}: " if source else ""
    restore_model(trainer.model, manifest, arrays, source)
    optimizer_state: dict[str, Any] = dict(manifest.get("optimizer") or {})
    optimizer_state.update(
        {k.removeprefix("optimizer/"): v for k, v in arrays.items() if k.startswith("optimizer/")}
    )
    try:
        trainer.optimizer.load_state_dict(optimizer_state)
        if trainer.accumulation is not None:
            trainer.accumulation.restore({"count": manifest.get("accumulated"),
                                          "total": arrays.get("accumulated")})
        trainer.state = TrainState.from_json(manifest["state"])
        trainer.history = EpochLog(manifest.get("history") or [])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{where}checkpoint does not fit this run: {e}") from None
    plugin_state = copy.deepcopy(manifest.get("plugins") or {})
    for mine in plugin_state.values():
        if isinstance(mine, dict):
            for key, value in mine.items():
                if isinstance(value, dict) and set(value) == {ARRAY_REF}:
                    if value[ARRAY_REF] not in arrays:
                        raise CheckpointError(f"{where}plugin array {value[ARRAY_REF]!r} missing")
                    mine[key] = arrays[value[ARRAY_REF]]
    trainer.restore_pending(manifest.get("data_rng_state"), plugin_state)
