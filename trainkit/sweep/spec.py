"""A sweep spec: a run config (the TOML of ``--config``) plus a ``[sweep]`` table.

    [sweep]
    monitor = "val_acc"          # any logged metric
    direction = "maximize"       # default: from the metric's name (val_acc up, val_loss down)
    trials = 20                  # per worker process
    pruner = "median"            # or "hyperband", "none"
    heartbeat = 30               # seconds; a worker silent for 4 of them is lost

    [sweep.search]
    lr = { low = 1e-4, high = 1e-2, log = true }
    hidden = { choices = ["64", "128", "256,128"] }
    batch-size = { choices = [32, 64, 128] }
    early-stopping.patience = { low = 1, high = 3 }   # a run plugin's option: plugin.option

A searched name is a run key (``batch-size``), a component option (``lr``, ``hidden``), a run
plugin's flag name (``lr-schedule``, ``early-stopping-patience``) or ``plugin.option``. Every
mistake (an unknown name, ``low >= high``, empty choices, a value the option refuses, an option
of a plugin that is off) is a one-line ``ConfigError`` naming the file and the key, found before
any trial starts: every bound and choice is checked by resolving a run config with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainkit.errors import ConfigError

PRUNERS = ("median", "hyperband", "none")
DIRECTIONS = ("maximize", "minimize")
SWEEP_KEYS = ("monitor", "direction", "trials", "pruner", "seed", "heartbeat", "search")
DISTRIBUTION_KEYS = {"low", "high", "log", "step", "choices"}


@dataclass
class Searched:
    """One searched option: where its value goes in a run config, and its range or choices."""

    key: str  # as written in the spec
    plugin: str | None  # the run plugin it belongs to, or None for a run key / component option
    option: str  # the run key, component option or plugin option
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None

    def suggest(self, trial) -> Any:
        """This option's value for an Optuna trial."""
        if self.choices is not None:
            return trial.suggest_categorical(self.key, self.choices)
        if all(isinstance(v, int) and not isinstance(v, bool)
               for v in (self.low, self.high, self.step or 1)):
            return trial.suggest_int(self.key, self.low, self.high, step=self.step or 1,
                                     log=self.log)
        assert self.low is not None and self.high is not None
        return trial.suggest_float(self.key, float(self.low), float(self.high), log=self.log,
                                   step=self.step)

    def values_to_check(self) -> list[Any]:
        return list(self.choices) if self.choices is not None else [self.low, self.high]

    def apply(self, layer: dict[str, Any], value: Any) -> None:
        """Put ``value`` into the run config ``layer`` (turning the plugin on when the option
        is named like the plugin, as ``--lr-schedule cosine`` does)."""
        if self.plugin is None:
            layer[self.option] = value
            return
        layer.setdefault(self.plugin, {})
        layer[self.plugin] = {**layer[self.plugin], self.option: value}


@dataclass
class SweepSpec:
    source: str
    layer: dict[str, Any]  # the run config: the spec without [sweep]
    monitor: str = "val_loss"
    direction: str = "minimize"
    trials: int = 20
    pruner: str = "median"
    seed: int | None = None
    search: list[Searched] = field(default_factory=list)
    raw_sweep: dict[str, Any] = field(default_factory=dict)  # the [sweep] table as written
    #: seconds between a worker's signs of life; after 4 missed, its trial is lost and rerun
    heartbeat: int = 30


def read_spec(path: Path, registry, overrides: dict[str, Any] | None = None) -> SweepSpec:
    """The spec in ``path``, checked against ``registry``; ``overrides`` (command-line flags,
    a run config layer) go over its run config."""
    from trainkit.loop.monitor import direction as direction_of
    from trainkit.session import config as run_config
    from trainkit.session.tomlio import read_toml

    source = str(path)
    raw = read_toml(Path(path))
    sweep = raw.pop("sweep", None)
    if not isinstance(sweep, dict):
        raise ConfigError(f"{source}: no [sweep] table; a sweep spec is a run config plus "
                          f"[sweep] and [sweep.search] (see docs/sweeps.md)")
    for key in sweep:
        if key not in SWEEP_KEYS:
            raise ConfigError(f"{source}: [sweep] has an unknown key {key!r}; it has: "
                              f"{', '.join(SWEEP_KEYS)}")
    layer = raw  # the run config, checked as `--config` checks a file
    on = run_config.enabled_plugins(run_config.merge_configs(run_config.RUN_DEFAULTS, layer), registry)
    run_config.check_config_file(layer, registry, on, source)
    layer = run_config.merge_configs(layer, overrides or {})
    monitor = str(sweep.get("monitor", "val_loss"))
    direction = sweep.get("direction") or {"max": "maximize", "min": "minimize"}.get(
        direction_of(monitor) or "")
    if direction not in DIRECTIONS:
        raise ConfigError(f"{source}: [sweep] direction must be maximize or minimize"
                          + ("" if sweep.get("direction") else
                             f" (it cannot be told from the name {monitor!r})"))
    trials, pruner, seed = sweep.get("trials", 20), sweep.get("pruner", "median"), sweep.get("seed")
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ConfigError(f"{source}: [sweep] trials must be an integer >= 1, got {trials!r}")
    if pruner not in PRUNERS:
        raise ConfigError(f"{source}: [sweep] pruner must be one of {', '.join(PRUNERS)}, "
                          f"got {pruner!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ConfigError(f"{source}: [sweep] seed must be an integer, got {seed!r}")
    heartbeat = sweep.get("heartbeat", 30)
    if isinstance(heartbeat, bool) or not isinstance(heartbeat, int) or heartbeat < 1:
        raise ConfigError(f"{source}: [sweep] heartbeat must be a whole number of seconds >= 1, "
                          f"got {heartbeat!r}")
    search = parse_search(sweep.get("search"), registry, source)
    spec = SweepSpec(source, layer, monitor, direction, trials, pruner, seed, search, sweep,
                     heartbeat)
    check_values(spec, registry)
    check_monitor(spec, registry)
    return spec


def check_monitor(spec: SweepSpec, registry) -> None:
    """A monitor naming a metric the run does not compute (``val_f1`` without ``f1`` among
    its metrics) would fail every trial: it is an error now. Names no metric gives (a key a
    plugin adds to the logs) are left to the run."""
    import re

    from trainkit.plugin.options import instantiate
    from trainkit.session import assembly
    from trainkit.session import config as run_config

    config = run_config.merge_configs(run_config.RUN_DEFAULTS, spec.layer)
    logged = {"loss", "lr"}
    for metric in assembly.resolve(config, registry).metrics:
        choose = getattr(metric, "choose", None)  # auto: the task's, known once data is read
        chosen = [c for task in ("classification", "binary", "regression")
                  for c in choose(task)] if choose else []
        logged |= {instantiate(registry.get("metric", c).factory, config).name
                   for c in chosen} if chosen else {metric.name}
    metric_names = {}
    for name, component in registry.components["metric"].items():
        try:
            metric_names[instantiate(component.factory, config).name] = name
        except Exception:  # noqa: BLE001 (a metric that cannot be made here names nothing)
            continue
    wanted = re.sub(r"^(val|test)_", "", spec.monitor)
    if wanted not in logged and wanted in metric_names:
        raise ConfigError(f"{spec.source}: [sweep] monitor {spec.monitor!r} is not logged by this "
                          f"run: add metric = [..., \"{metric_names[wanted]}\"]; it logs "
                          f"{', '.join(sorted(logged))} (and their val_ forms)")


def parse_search(table: Any, registry, source: str) -> list[Searched]:
    if not isinstance(table, dict) or not table:
        raise ConfigError(f"{source}: [sweep.search] must name at least one option to search, "
                          f"such as lr = {{ low = 1e-4, high = 1e-2, log = true }}")
    names = searchable_names(registry)
    searched = []
    for key, value in flatten_search(table):
        where = f"{source}: [sweep.search] {key}"
        target = names.get(key) or names.get(key.replace("-", "_"))
        if target is None:
            import difflib

            close = difflib.get_close_matches(key.replace("-", "_"), list(names), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{where}: no run option has this name{hint}")
        searched.append(distribution(key, target, value, where))
    return searched


def flatten_search(table: dict[str, Any], prefix: str = ""):
    """``(key, distribution)`` pairs; a nested table that is not a distribution is a plugin's
    options (``[sweep.search.early-stopping]`` or ``early-stopping.patience = {...}``)."""
    for key, value in table.items():
        if isinstance(value, dict) and value and not set(value) <= DISTRIBUTION_KEYS:
            yield from flatten_search(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def searchable_names(registry) -> dict[str, tuple[str | None, str]]:
    """Every name a spec may search -> ``(plugin or None, option)``."""
    from trainkit.plugin.options import plugin_option_param
    from trainkit.session.config import RUN_DEFAULTS, component_option_owners

    names: dict[str, tuple[str | None, str]] = {
        key: (None, key) for key in RUN_DEFAULTS
        if key not in ("plugin", "no_plugin", "out", "metric")}
    names.update({key: (None, key) for key in component_option_owners(registry)})
    for plugin, component in registry.components["plugin"].items():
        for spec in component.options:
            target = (plugin, spec.name)
            names[plugin_option_param(plugin, spec.name)] = target
            names[f"{plugin}.{spec.name}"] = target
            names[f"{plugin}.{spec.name}".replace("-", "_")] = target
    return names


def distribution(key: str, target: tuple[str | None, str], value: Any, where: str) -> Searched:
    plugin, option = target
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: give {{ low = ..., high = ... }} (with log = true or step = "
                          f"...) or {{ choices = [...] }}, not {value!r}")
    unknown = set(value) - DISTRIBUTION_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; a search range "
                          f"has low, high, log, step, or choices")
    if "choices" in value:
        choices = value["choices"]
        if set(value) != {"choices"}:
            raise ConfigError(f"{where}: choices cannot be combined with low, high, log or step")
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}: choices must be a non-empty list")
        if any(not isinstance(c, (str, int, float, bool)) for c in choices):
            raise ConfigError(f"{where}: each choice must be a string, number or boolean")
        return Searched(key, plugin, option, choices=choices)
    low, high, log, step = (value.get(k) for k in ("low", "high", "log", "step"))
    for name, bound in (("low", low), ("high", high)):
        if isinstance(bound, bool) or not isinstance(bound, (int, float)):
            raise ConfigError(f"{where}: {name} must be a number, got {bound!r}")
    assert low is not None and high is not None  # numbers, checked above
    if low >= high:
        raise ConfigError(f"{where}: low ({low}) must be below high ({high})")
    if log is not None and not isinstance(log, bool):
        raise ConfigError(f"{where}: log must be true or false")
    if log and low <= 0:
        raise ConfigError(f"{where}: a log range needs low > 0, got {low}")
    if step is not None and (isinstance(step, bool) or not isinstance(step, (int, float))
                             or step <= 0 or log):
        raise ConfigError(f"{where}: step must be a positive number, and not with log = true")
    return Searched(key, plugin, option, low, high, bool(log), step)


def check_values(spec: SweepSpec, registry) -> None:
    """Every bound and choice, each in a run config of its own, must resolve: the errors of a
    bad value come now, naming the spec's key, not after hours of trials."""
    from trainkit.session import assembly
    from trainkit.session import config as run_config

    for searched in spec.search:
        if searched.plugin is not None:
            on = run_config.enabled_plugins(run_config.merge_configs(run_config.RUN_DEFAULTS, spec.layer),
                                        registry)
            named_like_plugin = searched.option == searched.plugin or \
                searched.plugin.endswith("-" + searched.option)
            if searched.plugin not in on and not named_like_plugin:
                raise ConfigError(f"{spec.source}: [sweep.search] {searched.key} is an option of "
                                  f"plugin {searched.plugin!r}, which is off; turn it on with "
                                  f"plugin = [\"{searched.plugin}\"]")
        for value in searched.values_to_check():
            layer = trial_layer(spec, {searched.key: value})
            try:
                assembly.resolve(layer, registry)
            except ConfigError as e:
                raise ConfigError(f"{spec.source}: [sweep.search] {searched.key} = {value!r}: "
                                  f"{e}") from None


def trial_layer(spec: SweepSpec, params: dict[str, Any]) -> dict[str, Any]:
    """The run config of a trial: the spec's run config with ``params`` (by searched key)."""
    import copy

    layer = copy.deepcopy(spec.layer)
    by_key = {s.key: s for s in spec.search}
    for key, value in params.items():
        searched = by_key[key]
        searched.apply(layer, value)
        if searched.plugin is not None and searched.plugin not in layer.get("plugin", []):
            layer["plugin"] = [*layer.get("plugin", []), searched.plugin]
    return layer
