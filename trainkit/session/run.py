"""From a config to a ready run: pick the components, apply their options, build the trainer.

A config is a plain dict, the same in a TOML file, in ``--print-config`` output and in a
checkpoint's manifest:

* run keys: ``dataset``, ``model``, ``optimizer``, ``loss``, ``metric`` (list), ``plugin`` (list),
  ``no_plugin`` (list), ``epochs``, ``batch_size``, ``seed``, ``val_split``, ``out``, ``threads``,
  ``limit_batches``;
* component options by name at the top level: ``lr``, ``hidden``, ``activation``, ``data_dir``, ...;
* one table per run plugin for its options: ``{"checkpoint": {"every": 1, "keep": 3}}``.
"""

from __future__ import annotations

import copy
import datetime as _dt
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainkit.errors import ConfigError
from trainkit.plugin import contract
from trainkit.plugin.manager import BUILTIN_DISTRIBUTION
from trainkit.plugin.options import instantiate, plugin_option_param
from trainkit.plugin.registry import Registry

RUN_DEFAULTS: dict[str, Any] = {
    "dataset": "mnist",
    "model": "mlp",
    "optimizer": "adam",
    "loss": "cross-entropy",
    "metric": ["accuracy"],
    "plugin": [],
    "no_plugin": [],
    "epochs": 10,
    "batch_size": 64,
    "seed": 42,
    "val_split": 0.1,
    "out": None,
    "threads": None,
    "limit_batches": None,
}
SINGLE_KINDS = ("dataset", "model", "optimizer", "loss")


def component_option_owners(registry: Registry) -> dict[str, list[tuple[str, str]]]:
    """Option name -> ``[(kind, component name), ...]`` for every non-plugin component."""
    owners: dict[str, list[tuple[str, str]]] = {}
    for component in registry.all():
        if component.kind in ("plugin", "layer"):  # a layer's options are set per layer
            continue
        for spec in component.options:
            owners.setdefault(spec.name, []).append((component.kind, component.name))
    return owners


def names_of(value: Any) -> list[str]:
    """A list of names from a config value: one name alone (``"history"``) is a list of one,
    not a list of letters."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def merge_configs(*layers: dict[str, Any]) -> dict[str, Any]:
    """Later layers win; plugin tables merge key by key.

    ``plugin`` and ``no_plugin`` are not replaced but applied in turn, as on a command line:
    each layer's ``plugin`` names are turned on and its ``no_plugin`` names off, so
    ``--resume CKPT --no-plugin ddp`` keeps the checkpoint's other plugins.
    """
    merged: dict[str, Any] = {}
    for layer in layers:
        on, off = names_of(layer.get("plugin")), names_of(layer.get("no_plugin"))
        both = sorted(set(on) & set(off))
        if both:
            raise ConfigError(f"--plugin and --no-plugin both name {', '.join(both)}", "no_plugin")
        for key, value in layer.items():
            if key in ("plugin", "no_plugin"):
                continue
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = copy.deepcopy(value)
        plugins = [p for p in merged.get("plugin", []) if p not in off]
        disabled = [p for p in merged.get("no_plugin", []) if p not in on]
        merged["plugin"] = plugins + [p for p in on if p not in plugins]
        merged["no_plugin"] = disabled + [p for p in off if p not in disabled]
    return merged


def enabled_plugins(config: dict[str, Any], registry: Registry) -> list[str]:
    """Default run plugins and the model's (its factory's ``default_run_plugins``), plus
    ``plugin``, minus ``no_plugin``; unknown names are errors."""
    for key in ("plugin", "no_plugin"):
        for name in config.get(key) or []:
            registry.get("plugin", name)
    for_model = registry.model_plugins().get(config.get("model"), [])
    for name in for_model:
        registry.get("plugin", name)
    off = config.get("no_plugin") or []
    chosen = [n for n in dict.fromkeys([*registry.defaults(), *for_model]) if n not in off]
    for name in config.get("plugin") or []:
        if name not in chosen:
            chosen.append(name)
    return chosen


@dataclass
class Run:
    """Everything a training run needs, built and checked, before anything touches the disk."""

    config: dict[str, Any]
    registry: Registry
    dataset: Any
    model_factory: Any
    optimizer: Any
    loss: Any
    metrics: list[Any]
    plugins: dict[str, Any]
    splits: Any = None
    trainer: Any = None
    train_loader: Any = None
    val_loader: Any = None
    test_loader: Any = None
    run_dir: Path | None = None

    @property
    def is_main_process(self) -> bool:
        """False on the data-parallel ranks that write nothing (a plugin says so)."""
        return all(contract.read(p, "is_main_process") for p in self.plugins.values())


def resolve(config: dict[str, Any], registry: Registry, *, ambient: Collection[str] = ()) -> Run:
    """Check the config and create every component from it (no data is loaded yet). A key in
    ``ambient`` (set by the environment, not by the user for this run) that applies to no
    selected component is dropped instead of refused."""
    config = merge_configs(RUN_DEFAULTS, config)
    for key, low in (("epochs", 1), ("batch_size", 1)):
        value = config[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{key} must be an integer >= {low}, got {value!r}", key)
    limit = config["limit_batches"]
    if isinstance(limit, str) and limit.strip().lower() == "all" or limit == 0:
        config["limit_batches"] = limit = None  # every batch: lifts a resumed run's limit
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"limit_batches must be a number of batches, or 'all' (0) for every "
                          f"batch, got {limit!r}", "limit_batches")
    val_split = config["val_split"]
    if isinstance(val_split, bool) or not isinstance(val_split, (int, float)) or \
            not 0 <= val_split < 1:
        raise ConfigError(f"val_split must be a fraction in [0, 1), got {val_split!r}", "val_split")
    config["val_split"] = float(val_split)
    if isinstance(config["metric"], str):
        config["metric"] = [config["metric"]]
    repeated = sorted({m for m in config["metric"] if config["metric"].count(m) > 1})
    if repeated:
        raise ConfigError(f"metric {', '.join(repeated)} is listed more than once", "metric")
    components = {kind: registry.get(kind, config[kind]) for kind in SINGLE_KINDS}
    metric_components = [registry.get("metric", name) for name in config["metric"]]
    plugin_names = enabled_plugins(config, registry)

    owners = component_option_owners(registry)
    selected = {c.name: c for c in [*components.values(), *metric_components]}
    for key in list(config):
        if key in RUN_DEFAULTS or key in registry.components["plugin"]:
            continue
        if key not in owners:
            raise ConfigError(f"unknown option {key!r}{did_you_mean(key, registry)}", key)
        if config[key] is not None and not any(name in selected for _, name in owners[key]):
            if key in ambient:
                del config[key]
                continue
            applies = ", ".join(f"{kind} {name}" for kind, name in owners[key])
            raise ConfigError(f"option {key!r} applies to {applies}, none of which is selected", key)
    for name, plugin in registry.components["plugin"].items():
        table = config.get(name)
        if table is None:
            continue
        if not isinstance(table, dict):
            raise ConfigError(f"[{name}] must be a table of options", name)
        known = {spec.name for spec in plugin.options}
        for key in table:
            if key not in known:
                raise ConfigError(
                    f"plugin {name!r} has no option {key!r}; it has: {', '.join(sorted(known))}",
                    f"{name}_{key}",
                )

    def make(component, values):
        return instantiate(component.factory, values)

    plugins = {}
    for name in plugin_names:
        component = registry.get("plugin", name)
        try:
            plugins[name] = make(component, config.get(name) or {})
        except ConfigError as e:
            if e.option is None:
                e.option = "plugin"
            elif e.option != "plugin" and not e.option.startswith(name.replace("-", "_")):
                e.option = plugin_option_param(name, e.option)
            raise
        if contract.read(plugins[name], "name") is None:
            try:
                plugins[name].name = name
            except AttributeError:
                pass
    return Run(
        config=config,
        registry=registry,
        dataset=make(components["dataset"], config),
        model_factory=make(components["model"], config),
        optimizer=make(components["optimizer"], config),
        loss=make(components["loss"], config),
        metrics=[make(c, config) for c in metric_components],
        plugins=plugins,
    )


def effective_config(run: Run) -> dict[str, Any]:
    """The full config of ``run``: every option of every selected component, defaults included."""
    config = {key: run.config[key] for key in RUN_DEFAULTS}
    registry = run.registry
    selected = [registry.get(kind, run.config[kind]) for kind in SINGLE_KINDS]
    selected += [registry.get("metric", name) for name in run.config["metric"]]
    for component in selected:
        for spec in component.options:
            config[spec.name] = spec.resolve(run.config)
    for name in run.plugins:
        table = run.config.get(name) or {}
        config[name] = {spec.name: spec.resolve(table)
                        for spec in registry.get("plugin", name).options}
    return to_plain(config)


def to_plain(value: Any) -> Any:
    """Paths to strings, tuples to lists: JSON- and TOML-ready."""
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def default_run_dir(root: Path = Path("runs")) -> Path:
    stamp = _dt.datetime.now().strftime("%Y-%m-%dT%H-%M-%S")
    candidate, n = root / stamp, 1
    while candidate.exists():
        n += 1
        candidate = root / f"{stamp}-{n}"
    return candidate


def validation_split(n: int, fraction: float, rng) -> tuple[Any, Any]:
    """``(train indices, validation indices)``: a seeded ``fraction`` of ``n`` training samples
    held out for validation, both in their original order; ``(None, None)`` for ``fraction`` 0."""
    import numpy as np

    if fraction == 0:
        return None, None
    n_val = int(round(n * fraction))
    if not 1 <= n_val < n:
        raise ConfigError(f"val_split {fraction} of {n} training samples leaves "
                          f"{n_val} for validation and {n - n_val} for training; both need "
                          f"at least one", "val_split")
    order = rng.permutation(n)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def build_model(factory, splits, rng, layer_types: dict[str, Any] | None = None):
    """The model for ``splits``: ``factory.build(input_size, num_classes, rng)``, with
    ``input_shape=`` (one sample's shape, ``(28, 28, 1)`` for MNIST) and ``layer_types=`` (the
    registered layers, by name) too when ``build`` takes them; a ``ShapeError`` becomes a
    ``ConfigError``."""
    import inspect

    from trainkit.nn import ShapeError

    kwargs: dict[str, Any] = {}
    accepts = inspect.signature(factory.build).parameters
    if "input_shape" in accepts:
        kwargs["input_shape"] = splits.sample_shape
    if "layer_types" in accepts:
        kwargs["layer_types"] = layer_types
    try:
        return factory.build(splits.input_size, splits.num_classes, rng, **kwargs)
    except ShapeError as e:
        raise ConfigError(str(e), "model") from None


def build(run: Run, pm, *, load_data: bool = True) -> Run:
    """Load the data and create the model, loaders and trainer of a resolved run."""
    import numpy as np

    from trainkit.data import DataLoader
    from trainkit.loop.context import RunContext
    from trainkit.loop.trainer import Trainer

    config = run.config
    model_seed, data_seed, split_seed = np.random.SeedSequence(config["seed"]).spawn(3)
    run.splits = run.dataset.load() if load_data else None
    splits = run.splits
    layer_types = {name: c.factory for name, c in run.registry.components["layer"].items()}
    model = build_model(run.model_factory, splits, np.random.default_rng(model_seed), layer_types)
    train, val = validation_split(len(splits.train_labels), config["val_split"],
                                  np.random.default_rng(split_seed))
    shape = getattr(model, "input_shape", None)  # image batches for a convnet, flat for an MLP
    # Scoring batches: large for an MLP (fewer, faster GEMMs); a convnet's buffers grow with the
    # batch (im2col), and its GEMMs are large at any batch: it scores at the training batch size
    # and so keeps one set of buffers.
    eval_batch = max(config["batch_size"], 1000) if shape is None else config["batch_size"]

    def loader(images, labels, batch_size, **kwargs):
        return DataLoader(images, labels, batch_size, sample_shape=shape, **kwargs)

    test_loader = loader(splits.test_images, splits.test_labels, eval_batch)
    if val is None:  # val_split 0: validate on the test split (the CLI warns)
        run.train_loader = loader(splits.train_images, splits.train_labels, config["batch_size"],
                                  shuffle=True, rng=np.random.default_rng(data_seed))
        run.val_loader = test_loader
    else:  # both parts read the training file's one array
        run.train_loader = loader(splits.train_images, splits.train_labels, config["batch_size"],
                                  shuffle=True, rng=np.random.default_rng(data_seed), subset=train)
        run.val_loader = loader(splits.train_images, splits.train_labels, eval_batch, subset=val)
    run.test_loader = test_loader
    run.train_loader.limit_batches = run.val_loader.limit_batches = config["limit_batches"]
    out = config.get("out")
    run.run_dir = Path(out) if out else default_run_dir()
    context = RunContext(run_dir=run.run_dir, config=effective_config(run),
                         is_main_process=run.is_main_process,
                         component_sources=component_sources(run, pm),
                         class_names=splits.class_names,
                         image_shape=tuple(int(d) for d in splits.train_images.shape[1:]),
                         input_range=splits.input_range)
    run.trainer = Trainer(model, run.loss, run.optimizer, run.metrics, run.plugins,
                          plugin_manager=pm, context=context)
    return run


def component_sources(run: Run, pm) -> list[dict[str, Any]]:
    """Where each selected component came from: kind, name, plugin, package and version."""
    chosen = [(kind, run.config[kind]) for kind in SINGLE_KINDS]
    chosen += [("metric", name) for name in run.config["metric"]]
    chosen += [("plugin", name) for name in run.plugins]
    sources = []
    for kind, name in chosen:
        component = run.registry.components[kind].get(name)
        if component is None:
            continue
        info = pm.info(component.plugin)
        sources.append({"kind": kind, "name": name, "plugin": component.plugin,
                        "package": info.distribution, "version": info.version})
    return sources


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
    try:
        run = resolve(config, registry)
    except ConfigError as e:  # the checkpoint's config, not an option of the command
        raise CheckpointError(f"{path}: {e}") from None
    return path, manifest, arrays, run


STATUS_FILE = "run.json"


def write_status(run: Run, status: str) -> None:
    """Record in ``run.json`` whether the run is running, completed, stopped, failed or
    interrupted, with its config and progress, so a folder never looks more complete than it is."""
    import json

    from trainkit.persist.atomic import atomic_write

    trainer = run.trainer
    record = {
        "status": status,
        "epoch": trainer.state.epoch,
        "global_step": trainer.state.global_step,
        "epochs": run.config["epochs"],
        "stop_message": trainer.stop_message,
        "test": trainer.test_logs,
        "blas_threads": trainer.context.blas_threads,
        "blas_kernels": trainer.context.blas_kernels,
        "updated": _dt.datetime.now().isoformat(timespec="seconds"),
        "config": trainer.context.config,
    }
    try:
        atomic_write(run.run_dir / STATUS_FILE, json.dumps(record, indent=1) + "\n")
    except OSError as e:  # the status is a record, not the work: never fail a run over it
        trainer.say(f"trainkit: warning: {run.run_dir / STATUS_FILE}: cannot write the run "
                    f"status ({e.strerror or e})", "warning")


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
    for kind in ("model", "loss"):
        fixed += [spec.name for spec in registry.get(kind, run.config[kind]).options]
    for name in run.config["metric"]:
        fixed += [spec.name for spec in registry.get("metric", name).options]
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


def check_file_value(spec, value: Any, where: str) -> None:
    """A config file's value must convert to its option's type; the error names file and key."""
    try:
        spec.convert(value, where)
    except ConfigError as e:
        raise ConfigError(str(e)) from None  # no option: it is the file's key, not a flag


def check_config_file(layer: dict[str, Any], registry: Registry, plugins_on, source: str) -> None:
    """Every key of a config file is a run key, a component option or the table of a run plugin
    that is on; a mistake names the file and the key as written there (not a flag)."""
    import difflib

    owners = component_option_owners(registry)
    plugin_names = registry.components["plugin"]
    for key, value in layer.items():
        if key in RUN_DEFAULTS:
            continue
        if key in owners:
            kind, name = owners[key][0]
            spec = next(s for s in registry.get(kind, name).options if s.name == key)
            check_file_value(spec, value, f"{source}: {key}")
            continue
        if key in plugin_names and isinstance(value, dict):
            if key not in plugins_on:
                raise ConfigError(f"{source}: [{key}] sets options of plugin {key!r}, which is "
                                  f"off; turn it on with plugin = [\"{key}\"] or --plugin {key}")
            specs = {spec.name: spec for spec in plugin_names[key].options}
            for option, option_value in value.items():
                if option not in specs:
                    close = difflib.get_close_matches(option, list(specs), n=1)
                    hint = f"did you mean {close[0]!r}? " if close else ""
                    raise ConfigError(f"{source}: [{key}] has an unknown key {option!r}; {hint}"
                                      f"plugin {key!r} has: {', '.join(sorted(specs))}")
                check_file_value(specs[option], option_value, f"{source}: [{key}] {option}")
            continue
        raise ConfigError(f"{source}: unknown key {key!r}{did_you_mean(key, registry)}")


def did_you_mean(key: str, registry: Registry) -> str:
    """``; did you mean 'epochs'?`` for an unknown config key close to a known one, else ''."""
    import difflib

    close = (difflib.get_close_matches(key, list(RUN_DEFAULTS), n=1)  # run keys first
             or difflib.get_close_matches(key, [*component_option_owners(registry),
                                                *registry.components["plugin"]], n=1))
    return f"; did you mean {close[0]!r}?" if close else ""
