"""From a checked config to a ready run: the components made with their options (``resolve``),
then the data loaded, split and batched, the model built and the Trainer made (``build``)."""


from __future__ import annotations

import datetime as _dt
from collections.abc import Collection
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainkit.errors import ConfigError
from trainkit.plugin import contract
from trainkit.plugin.options import instantiate, plugin_option_param
from trainkit.plugin.registry import Registry

if TYPE_CHECKING:
    from trainkit.data import DataLoader, DatasetSplits
    from trainkit.loop.trainer import Trainer
    from trainkit.nn.optim import Optimizer
from trainkit.session.config import (
    RUN_DEFAULTS,
    SINGLE_KINDS,
    component_option_owners,
    did_you_mean,
    enabled_plugins,
    merge_configs,
)


@dataclass
class Run:
    """A checked config and the components made from it; nothing loaded or written yet.
    ``build`` makes a ``BuiltRun`` of it: a run is whole in each of its two forms."""

    config: dict[str, Any]
    registry: Registry
    dataset: Any  # a dataset plugin's object: load() gives the DatasetSplits
    model_factory: Any  # a model plugin's object: build(input, classes, rng) gives the model
    optimizer: Optimizer
    loss: Any
    metrics: list[Any]
    plugins: dict[str, Any]

    @property
    def is_main_process(self) -> bool:
        """False on the data-parallel ranks that write nothing (a plugin says so)."""
        return all(contract.read(p, "is_main_process") for p in self.plugins.values())


@dataclass
class BuiltRun(Run):
    """A run with its data loaded, split and batched, its model and Trainer made, and its run
    folder chosen: what ``Session.fit`` trains."""

    splits: DatasetSplits
    trainer: Trainer
    train_loader: DataLoader
    val_loader: DataLoader
    test_loader: DataLoader
    run_dir: Path


def resolve(config: dict[str, Any], registry: Registry, *, ambient: Collection[str] = ()) -> Run:
    """Check the config and create every component from it (no data is loaded yet). A key in
    ``ambient`` (set by the environment, not by the user for this run) that applies to no
    selected component is dropped instead of refused."""
    config = merge_configs(RUN_DEFAULTS, config)
    for key, low in (("epochs", 1), ("batch_size", 1), ("accumulate", 1)):
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
    selected = {c.name: c for c in with_choices([*components.values(), *metric_components],
                                                registry)}
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


def with_choices(components: list[Any], registry: Registry) -> list[Any]:
    """``components`` and, for one that stands for the task's choice (``auto``: a class with
    ``choose``), every component it may choose: their options are the run's too."""
    from trainkit.data.loader import TASKS

    found = list(components)
    for component in components:
        if not hasattr(component.factory, "choose"):
            continue
        choose = instantiate(component.factory, {}).choose
        for task in TASKS:
            chosen = choose(task)
            for name in [chosen] if isinstance(chosen, str) else chosen:
                if all(c.name != name or c.kind != component.kind for c in found):
                    found.append(registry.get(component.kind, name))
    return found


def effective_config(run: Run) -> dict[str, Any]:
    """The full config of ``run``: every option of every selected component (and of those
    ``auto`` may choose), defaults included."""
    config = {key: run.config[key] for key in RUN_DEFAULTS}
    registry = run.registry
    selected = [registry.get(kind, run.config[kind]) for kind in SINGLE_KINDS]
    selected += [registry.get("metric", name) for name in run.config["metric"]]
    for component in with_choices(selected, registry):
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
        model = factory.build(splits.input_size, splits.outputs, rng, **kwargs)
    except ShapeError as e:
        raise ConfigError(str(e), "model") from None
    if splits.task == "regression":
        model = to_target_units(model, splits.train_labels, splits.outputs)
    return model


def to_target_units(model: Any, targets: Any, outputs: int) -> Any:
    """A regression model ending in a ``Rescale`` to its targets' mean and standard deviation
    (``Sequential`` models; another model is left as it is)."""
    import numpy as np

    from trainkit.nn import Rescale, Sequential

    if not isinstance(model, Sequential):
        return model
    t = np.asarray(targets, np.float64).reshape(len(targets), outputs)
    shift = t.mean(axis=0) if len(t) else np.zeros(outputs)  # no targets: a checkpoint's come
    spread = t.std(axis=0) if len(t) else np.ones(outputs)
    return Sequential(*model.layers, Rescale(shift, np.where(spread > 0, spread, 1.0)),
                      input_shape=model.input_shape)


def build(run: Run, pm) -> BuiltRun:
    """Load the data and create the model, loaders and trainer of a resolved run."""
    import numpy as np

    from trainkit.data import DataLoader
    from trainkit.loop.context import RunContext
    from trainkit.loop.trainer import Trainer

    config = run.config
    model_seed, data_seed, split_seed = np.random.SeedSequence(config["seed"]).spawn(3)
    splits = run.dataset.load()
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
        train_loader = loader(splits.train_images, splits.train_labels, config["batch_size"],
                              shuffle=True, rng=np.random.default_rng(data_seed))
        val_loader = test_loader
    else:  # both parts read the training file's one array
        train_loader = loader(splits.train_images, splits.train_labels, config["batch_size"],
                              shuffle=True, rng=np.random.default_rng(data_seed), subset=train)
        val_loader = loader(splits.train_images, splits.train_labels, eval_batch, subset=val)
    train_loader.limit_batches = val_loader.limit_batches = config["limit_batches"]
    out = config.get("out")
    run_dir = Path(out) if out else default_run_dir()
    context = RunContext(run_dir=run_dir, config=effective_config(run),
                         is_main_process=run.is_main_process,
                         component_sources=component_sources(run, pm),
                         class_names=splits.class_names, task=splits.task,
                         outputs=splits.outputs,
                         preprocessing=splits.preprocessing,
                         image_shape=tuple(int(d) for d in splits.train_images.shape[1:]),
                         input_range=splits.input_range)
    loss, metrics = for_task(run, splits)
    trainer = Trainer(model, loss, run.optimizer, metrics, run.plugins,
                      plugin_manager=pm, context=context, accumulate=config["accumulate"])
    resolved = {f.name: getattr(run, f.name) for f in fields(Run)}
    resolved.update(loss=loss, metrics=metrics)
    return BuiltRun(**resolved, splits=splits, trainer=trainer, train_loader=train_loader,
                    val_loader=val_loader, test_loader=test_loader, run_dir=run_dir)


def for_task(run: Run, splits: DatasetSplits) -> tuple[Any, list[Any]]:
    """The run's loss and metrics for the dataset's task: a component that stands for the
    task's choice (``choose(task)``: the ``auto`` loss and metrics) is replaced by it, and one
    that names the tasks it serves (``tasks``) is refused for another, saying what to use."""
    task, registry = splits.task, run.registry

    def make(kind: str, name: str) -> Any:
        return instantiate(registry.get(kind, name).factory, run.config)

    choose = getattr(run.loss, "choose", None)
    loss = make("loss", choose(task)) if choose is not None else run.loss
    metrics: list[Any] = []
    for metric in run.metrics:
        choose = getattr(metric, "choose", None)
        metrics += [make("metric", name) for name in choose(task)] if choose else [metric]
    fits = {"classification": "cross-entropy", "binary": "binary-cross-entropy",
            "regression": "mse, mae or huber"}
    if task not in getattr(loss, "tasks", (task,)):
        raise ConfigError(f"loss {run.config['loss']} does not fit dataset {splits.name}, a "
                          f"{task} task: use --loss {fits[task]} (or auto)", "loss")
    for metric, name in zip(metrics, names_of(metrics)):
        if task not in getattr(metric, "tasks", (task,)):
            raise ConfigError(f"metric {name} does not fit dataset {splits.name}, a {task} task "
                              f"(leave --metric out for the task's own)", "metric")
    return loss, metrics


def names_of(metrics: list[Any]) -> list[str]:
    from trainkit.loop.metrics import as_metric

    return [str(as_metric(m).name) for m in metrics]


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
