"""trainkit's exceptions.

Inside the library every expected failure is one of these. The CLI turns them into one clear line
(usage errors exit with code 2, runtime errors with code 1) and never shows a traceback unless
``-v`` is given.
"""

from __future__ import annotations


class TrainkitError(Exception):
    """Base class of every error trainkit raises on purpose."""

    exit_code = 1
    #: set on an error that another process reports for the job (under ddp, the same error
    #: raised on every rank is said by rank 0): the CLI then exits without repeating it
    reported_elsewhere = False


class ConfigError(TrainkitError):
    """A bad option value, an unknown component name or a conflicting configuration.

    ``option`` names the parameter at fault (``"lr"``, ``"checkpoint_every"``) when known, so the
    CLI can point at ``--lr``.
    """

    exit_code = 2

    def __init__(self, message: str, option: str | None = None) -> None:
        super().__init__(message)
        self.option = option


class RegistrationError(TrainkitError):
    """A plugin registered a component badly, for example under a name already taken."""


class DataError(TrainkitError):
    """A dataset file is missing, truncated, malformed or failed verification."""


class CheckpointError(TrainkitError):
    """A checkpoint could not be written, or is not safe or valid to load."""


class ExportError(TrainkitError):
    """A model cannot be written in the format asked for (a layer it cannot express, a
    missing extra)."""


class PluginProblem(Exception):
    """What is wrong with a plugin, in words its author can act on (the message is all)."""


class PluginError(TrainkitError):
    """A plugin raised inside a hook, or could not be loaded. Names the plugin and the hook (or
    the loading stage, ``import``)."""

    def __init__(self, plugin: str, hook: str, error: BaseException) -> None:
        where = {"import": "could not be imported", "registration": "cannot be registered",
                 "check": "looks mistaken"}.get(hook, f"failed in hook {hook}")
        what = str(error) if isinstance(error, PluginProblem) else \
            f"{type(error).__name__}: {error}"
        super().__init__(f"plugin {plugin!r} {where}: {what}")
        self.plugin = plugin
        self.hook = hook
        self.error = error

