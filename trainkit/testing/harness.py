"""The test harness behind ``trainkit.testing`` and ``check_plugin``: the synthetic ``tiny``
dataset, the CLI run in-process with extra plugins (``run_cli`` -> ``CliResult``), and a plugin
object that records every hook called on it. Nothing heavy is imported until used."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainkit.markers import hookimpl

__all__ = ["CliResult", "HookRecorder", "TinyDataset", "TinyDatasetPlugin", "run_cli"]

TINY = "tiny"


class TinyDataset:
    """A synthetic dataset for tests: class ``k`` lights up row ``k % 8`` (and, for k >= 8,
    column ``k - 8`` too) of 8x8 images with noise; seeded, so every call gives the same data.

    Args:
        train: training images.
        test: test images.
    """

    name = TINY

    def __init__(self, train: int = 320, test: int = 80) -> None:
        self.train, self.test = train, test

    def load(self):
        import numpy as np

        from trainkit.data import DatasetSplits

        rng = np.random.default_rng(1234)

        def images(n):
            labels = rng.integers(0, 10, size=n).astype(np.uint8)
            x = rng.integers(0, 70, size=(n, 8, 8)).astype(np.uint8)
            for i, k in enumerate(labels):
                x[i, k % 8, :] = 220
                if k >= 8:
                    x[i, :, k - 8] = 220
            return x, labels

        train_x, train_y = images(self.train)
        test_x, test_y = images(self.test)
        return DatasetSplits(TINY, train_x, train_y, test_x, test_y, 10)


class TinyDatasetPlugin:
    """Registers ``tiny`` as a dataset, the way a dataset plugin does."""

    name = "trainkit-testing-tiny"

    @hookimpl
    def register_datasets(self, register):
        register(TINY, TinyDataset)


@dataclass
class CliResult:
    """What a CLI invocation did."""

    exit_code: int
    output: str
    run_dir: Path | None
    exception: BaseException | None = None
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def checkpoints(self) -> dict[str, Path]:
        """The run folder's checkpoints by file name (``last.npz``, ``final.npz``, ...)."""
        if self.run_dir is None or not self.run_dir.is_dir():
            return {}
        return {p.name: p for p in sorted(self.run_dir.glob("*.npz"))}

    def manifest(self, checkpoint: str = "last.npz") -> dict[str, Any]:
        """The JSON manifest of one of the run's checkpoints (config, history, plugin states)."""
        from trainkit.persist.checkpoint_io import load_checkpoint

        return load_checkpoint(self.checkpoints[checkpoint])[0]

    def __repr__(self) -> str:
        return f"CliResult(exit_code={self.exit_code}, run_dir={self.run_dir})"


def run_cli(args: list[str], *, plugins: Sequence[Any] = (), modules: Sequence[str] = (),
            cwd: Path | None = None, env: dict[str, str] | None = None,
            tiny: bool = True) -> CliResult:
    """``trainkit ARGS`` in-process through click's runner, with ``plugins`` (objects) and
    ``modules`` (``-p`` import paths) registered; ``run`` gets ``--dataset tiny`` (unless
    ``--dataset``, ``--resume`` or ``tiny=False``), ``--out run`` and ``--threads 1`` unless
    given. ``history`` is read from the run's newest checkpoint."""
    import contextlib

    from click.testing import CliRunner

    from trainkit.cli import make_cli

    args = [str(a) for a in args]
    extra = [TinyDatasetPlugin()] if tiny else []
    is_run = bool(args) and args[0] == "run"
    if is_run:
        if "--dataset" not in args and tiny and "--resume" not in args:
            args += ["--dataset", TINY]
        if "--out" not in args:
            args += ["--out", "run"]
        if "--threads" not in args:
            args += ["--threads", "1"]
    for module in modules:
        args = ["-p", module, *args]
    cwd = Path(cwd or ".")
    with contextlib.chdir(cwd) if hasattr(contextlib, "chdir") else _chdir(cwd):
        result = CliRunner().invoke(make_cli(plugins=[*extra, *plugins]), args, env=env,
                                    catch_exceptions=True)
        run_dir = None
        if is_run:
            run_dir = (cwd / args[args.index("--out") + 1]).resolve()
    exception = result.exception if not isinstance(result.exception, SystemExit) else None
    cli = CliResult(result.exit_code, result.output, run_dir, exception)
    newest = _newest_checkpoint(run_dir)
    if newest is not None:
        cli.history = cli.manifest(newest.name).get("history") or []
    return cli


def _newest_checkpoint(run_dir: Path | None) -> Path | None:
    if run_dir is None or not run_dir.is_dir():
        return None
    for name in ("final.npz", "emergency.npz", "last.npz"):
        if (run_dir / name).exists():
            return run_dir / name
    return None


class _chdir:  # contextlib.chdir is Python 3.11+
    def __init__(self, path: Path) -> None:
        self.path, self.old = path, None

    def __enter__(self):
        import os

        self.old = os.getcwd()
        os.chdir(self.path)

    def __exit__(self, *exc):
        import os

        os.chdir(self.old)


class HookRecorder:
    """A plugin object that records every lifecycle hook called on it: ``calls`` is a list of
    ``(hook name, arguments)``; ``names()`` the hook names in order."""

    name = "hook-recorder"

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def count(self, hook: str) -> int:
        return sum(1 for name, _ in self.calls if name == hook)

    def _record(self, hook: str, arguments: dict[str, Any]) -> None:
        self.calls.append((hook, {k: _summary(v) for k, v in arguments.items()
                                  if k not in ("trainer", "context")}))

    def __repr__(self) -> str:
        return f"HookRecorder({len(self.calls)} calls)"


def _recording(hook: str, parameters: list[str], first: bool = False):
    """An implementation of ``hook`` taking exactly its spec's arguments, by name: pluggy reads
    which arguments to pass from the function's code, so the function is written out. ``first``
    for a firstresult hook (``on_message``): recorded before the plugin that answers it, and
    answering nothing itself."""
    source = (f"def {hook}(self, {', '.join(parameters)}):\n"
              f"    self._record({hook!r}, {{{', '.join(f'{p!r}: {p}' for p in parameters)}}})\n")
    namespace: dict[str, Any] = {}
    exec(compile(source, f"<HookRecorder.{hook}>", "exec"), namespace)  # noqa: S102
    return hookimpl(tryfirst=first)(namespace[hook])


def _summary(value: Any) -> Any:
    """Logs as a plain dict, batches as their shapes: what a test compares."""
    if isinstance(value, tuple) and len(value) == 2 and all(hasattr(v, "shape") for v in value):
        return tuple(tuple(v.shape) for v in value)
    if hasattr(value, "keys") and hasattr(value, "__getitem__"):
        try:
            return {k: value[k] for k in value.keys()}
        except Exception:  # noqa: BLE001 (a state dict shared by plugins: keep the object)
            return value
    return value


def _add_recording_hooks() -> None:
    import inspect

    from trainkit import hookspecs

    for hook in hookspecs.RUN_HOOKS:  # every hook a run calls, messages and checkpoints too
        spec = getattr(hookspecs, hook)
        parameters = [p for p in inspect.signature(spec).parameters]
        first = bool(spec.trainkit_spec.get("firstresult"))
        setattr(HookRecorder, hook, _recording(hook, parameters, first))


_add_recording_hooks()
