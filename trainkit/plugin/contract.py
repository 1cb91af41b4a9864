"""What the core reads from a plugin object besides its hooks: four optional attributes,
documented here and in docs/plugins.md, type-checked, and read nowhere else.

pluggy's hooks are the plugin contract; these attributes cover what a hook cannot: facts the
core needs before the first hook runs (which process writes files, how many threads a plugin
needs) or about a plugin rather than an event (its name, whether its hook time is its work).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trainkit.errors import PluginError, PluginProblem


@dataclass(frozen=True)
class Attribute:
    name: str
    type: type
    default: Any
    doc: str


PLUGIN_ATTRIBUTES: dict[str, Attribute] = {a.name: a for a in (
    Attribute("name", str, None,
              "the name the plugin was registered under; trainkit sets it on a run plugin that "
              "has none, and it is the key of the plugin's state in checkpoints"),
    Attribute("is_main_process", bool, True,
              "False on a data-parallel process that must write no file (set by ddp before the "
              "run starts): no run folder, checkpoint or report"),
    Attribute("preferred_threads", int, None,
              "the thread count the plugin needs unless --threads says otherwise (ddp: the "
              "cores of the machine shared among its processes)"),
    Attribute("slow_hooks_expected", bool, False,
              "True when the time spent in the plugin's hooks is its work (ddp's allreduce): no "
              "slow-plugin warning"),
)}


#: Attributes renamed since 0.1.0 (trainkit.deprecated): new name -> old name, still read.
RENAMED_ATTRIBUTES = {"preferred_threads": "preferred_blas_threads"}


def read(plugin: object, attribute: str) -> Any:
    """``plugin``'s value of a contract ``attribute``, or its default when unset."""
    spec = PLUGIN_ATTRIBUTES[attribute]
    value = getattr(plugin, attribute, None)
    old = RENAMED_ATTRIBUTES.get(attribute)
    if value is None and old is not None and getattr(plugin, old, None) is not None:
        from trainkit.deprecated import warn

        warn(old)
        value = getattr(plugin, old)
    if value is None:
        return spec.default
    if not isinstance(value, spec.type) or (spec.type is int and isinstance(value, bool)):
        name = getattr(plugin, "name", None) or type(plugin).__name__
        raise PluginError(str(name), "contract", PluginProblem(
            f"its attribute {attribute} must be a {spec.type.__name__}, got {value!r}"))
    return value


def state_key(plugin: object) -> str:
    """Where a plugin keeps its state in a checkpoint: under its registered name."""
    return read(plugin, "name")
