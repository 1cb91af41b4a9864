"""Resuming and reopening checkpoints: the components a checkpoint was trained with are
installed, its config resolves into a run, and what a resume may change (the lr, epochs, plugins)
and may not (the dataset, model, loss, seed, ...)."""


from __future__ import annotations

from pathlib import Path
from typing import Any

from trainkit.errors import ConfigError
from trainkit.plugin.manager import BUILTIN_DISTRIBUTION
from trainkit.plugin.registry import Registry
from trainkit.session.assembly import Run, effective_config, resolve, with_choices
from trainkit.session.config import RUN_DEFAULTS, SINGLE_KINDS, merge_configs


def check_components_installed(manifest: dict[str, Any], registry: Registry, pm, source: str,
                               kinds: tuple[str, ...] = (*SINGLE_KINDS, "metric", "plugin")
                               ) -> None:
    """Every component a checkpoint was trained with is registered now; a missing one is named
    with its kind and the plugin (and package) that provided it."""
    config = manifest.get("config") or {}
    wanted = [s for s in manifest.get("components") or [] if s.get("kind") in kinds]
    if not wanted:  # a checkpoint from before components were recorded: the names alone
        wanted = [{"kind": kind, "name": config.get(kind)} for kind in SINGLE_KINDS
                  if kind in kinds and isinstance(config.get(kind), str)]
    skipped = {name for name, _ in pm.failures}
    for record in wanted:
        kind, name = record["kind"], record["name"]
        if name in registry.components.get(kind, {}):
            continue
        plugin, package = record.get("plugin"), record.get("package")
        origin = ""
        if plugin:
            origin = f" from plugin {plugin!r}"
            if package and package != BUILTIN_DISTRIBUTION:
                origin += f" (package {package}" + (f" {record['version']}" if record.get(
                    "version") else "") + ")"
        why = ("which is blocked (-p no:" + plugin + ")" if plugin and pm.is_blocked(plugin) else
               "which was skipped (see the warning above)" if plugin in skipped else
               "which is not installed" if plugin else "which no installed plugin registers")
        raise ConfigError(f"{source} was trained with {kind} {name!r}{origin}, {why}")


def open_checkpoint(path: Path, registry: Registry, pm, kinds: tuple[str, ...],
                    data_dir: Path | None = None):
    """``(file, manifest, arrays, run)`` of a checkpoint file or run folder (its final model):
    loaded and verified, the components of ``kinds`` checked installed, and its config resolved
    into a run (data not loaded), without run plugins; the config's mistakes name the file."""
    from trainkit.errors import CheckpointError
    from trainkit.persist.checkpoint_io import load_checkpoint
    from trainkit.session.run_folder import model_in_run_folder

    path = Path(path)
    if path.is_dir():
        path = model_in_run_folder(path)
    manifest, arrays = load_checkpoint(path)
    check_components_installed(manifest, registry, pm, str(path), kinds=kinds)
    config = {k: v for k, v in (manifest.get("config") or {}).items() if not isinstance(v, dict)}
    config.update(plugin=[], no_plugin=registry.defaults(), out=None)
    if data_dir is not None:
        config["data_dir"] = str(data_dir)
    ambient: set[str] = set()
    if "dataset" not in kinds and config.get("dataset") not in registry.components["dataset"]:
        # predict and export read no data: a dataset plugin that is not installed here (or a
        # Session's arrays) does not matter, and its options are left aside
        config["dataset"] = "idx"
        ambient = {key for key in config if key not in RUN_DEFAULTS}
    try:
        run = resolve(config, registry, ambient=ambient)
    except ConfigError as e:  # the checkpoint's config, not an option of the command
        raise CheckpointError(f"{path}: {e}") from None
    return path, manifest, arrays, run


#: Run keys a resume must keep: they decide which model is trained on which data, and in which
#: order. Every option of the model, loss and metrics is kept too (``resume_changes``).
FIXED_ON_RESUME = ("dataset", "model", "loss", "optimizer", "metric", "seed", "val_split")


def check_resume_keys(saved: dict[str, Any], config: dict[str, Any], source: str) -> None:
    """Refuse a merged ``config`` that changes a run key in ``FIXED_ON_RESUME`` (checked before
    the components are resolved, so that the error names what really changed)."""
    merged = merge_configs(RUN_DEFAULTS, config)
    refuse_changes(saved, merged, FIXED_ON_RESUME, source)


def refuse_changes(saved: dict[str, Any], new: dict[str, Any], keys, source: str) -> None:
    for key in keys:
        if key in saved and saved[key] != new.get(key):
            raise ConfigError(
                f"{key} cannot change on resume: {source} was trained with {key} = "
                f"{show(saved[key])}, this run asks for {show(new.get(key))}; start a new run "
                f"(another --out) to train with it", key)


def resume_changes(saved: dict[str, Any], run: Run, source: str) -> list[str]:
    """What ``run`` changes from the effective config ``saved`` in a checkpoint, as
    ``"lr 0.001 -> 0.01"`` lines; a change that a resume cannot make is a ``ConfigError``.

    May change (and is applied): epochs, batch size, threads, the run folder, optimizer options
    such as the lr, the data folder, run plugins (on, off, their options). May not: anything in
    ``FIXED_ON_RESUME``, nor an option of the model, the loss or a metric.
    """
    new = effective_config(run)
    registry = run.registry
    fixed = list(FIXED_ON_RESUME)
    kept = [registry.get(kind, run.config[kind]) for kind in ("model", "loss")]
    kept += [registry.get("metric", name) for name in run.config["metric"]]
    for component in with_choices(kept, registry):  # auto's choices' options too
        fixed += [spec.name for spec in component.options]
    refuse_changes(saved, new, fixed, source)
    plugin_names = set(registry.components["plugin"])
    changes = []
    for key, value in new.items():
        if key in fixed or key in plugin_names or key in ("plugin", "no_plugin", "out"):
            continue
        if key in saved and saved[key] != value:
            changes.append(f"{key} {show(saved[key])} -> {show(value)}")
    saved_plugins = {k for k, v in saved.items() if k in plugin_names and isinstance(v, dict)}
    for name in run.plugins:
        if name not in saved_plugins:
            changes.append(f"plugin {name} on")
            continue
        for key, value in new[name].items():
            if key in saved[name] and saved[name][key] != value:
                changes.append(f"{name} {key} {show(saved[name][key])} -> {show(value)}")
    changes += [f"plugin {name} off" for name in sorted(saved_plugins - set(run.plugins))]
    return changes


def show(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value)) if value else "(none)"
    return str(value)
