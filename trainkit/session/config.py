"""Run configs: the run keys' defaults, layers merged, and the checks a config file gets.

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
from typing import Any

from trainkit.errors import ConfigError
from trainkit.plugin.registry import Registry

RUN_DEFAULTS: dict[str, Any] = {
    "dataset": "mnist",
    "model": "mlp",
    "optimizer": "adam",
    "loss": "auto",  # the dataset's task chooses: cross-entropy, binary-cross-entropy or mse
    "metric": ["auto"],
    "plugin": [],
    "no_plugin": [],
    "epochs": 10,
    "batch_size": 64,
    "seed": 42,
    "val_split": 0.1,
    "out": None,
    "threads": None,
    "limit_batches": None,
    "accumulate": 1,
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
    for_model = registry.model_plugins().get(str(config.get("model")), [])
    for name in for_model:
        registry.get("plugin", name)
    off = config.get("no_plugin") or []
    chosen = [n for n in dict.fromkeys([*registry.defaults(), *for_model]) if n not in off]
    for name in config.get("plugin") or []:
        if name not in chosen:
            chosen.append(name)
    return chosen


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
            if key == "lr" and value == "auto":  # the session sweeps it (Session.resolve)
                continue
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
