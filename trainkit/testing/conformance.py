"""``check_plugin``: a run plugin taken through what trainkit will do to it, in one line.

    from trainkit.testing import check_plugin

    def test_my_plugin_conforms():
        check_plugin(MyPlugin)

It runs the plugin (on the synthetic ``tiny`` dataset, in a temporary folder) through:

1. a full run, twice (what differs between two identical runs, such as times, is ignored below);
2. a run interrupted mid-epoch as by Ctrl+C, then resumed: the weights, the history and the
   plugin's public attributes must end as in the uninterrupted run (name an attribute with a
   leading ``_`` when it is this process's own, such as a timer);
3. a run where another plugin fails: the run must end with that plugin's error, not yours;
4. its options given on the command line, in a config file and in the environment: each must
   reach the run's config;
5. where mpi4py and ``mpiexec`` are installed, a 2-rank ``ddp`` run.

Every failure is said in a plugin author's words ("your plugin's state after resume differs:
``count`` was 7, expected 12 -- save it in on_save_checkpoint ...") and raised together as one
``PluginCheckError`` (an ``AssertionError``, so pytest shows it as a failed test).
"""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainkit.testing.doubles import FailsAtEpoch2, InterruptAt, Observer, Registers
from trainkit.testing.harness import run_cli

__all__ = ["ConformanceReport", "PluginCheckError", "check_plugin"]

EPOCHS, BATCH, INTERRUPT_AT_STEP = 3, 32, 13  # 9 steps an epoch: step 13 is mid-epoch 2


class PluginCheckError(AssertionError):
    """What ``check_plugin`` found wrong, one line per problem."""


@dataclass
class ConformanceReport:
    """What ``check_plugin`` ran (and skipped, with why)."""

    plugin: str
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"check_plugin({self.plugin!r}): ran {', '.join(self.ran)}"]
        lines += [f"  skipped {s}" for s in self.skipped]
        return "\n".join(lines)


def registered_name(factory: Any, name: str | None) -> str:
    if name:
        return name
    declared = factory.__dict__.get("name") if isinstance(factory, type) else None
    if isinstance(declared, str):
        return declared
    words = re.findall(r"[A-Z][a-z0-9]*|[a-z0-9]+", getattr(factory, "__name__", "plugin"))
    return "-".join(w.lower() for w in words)


def check_plugin(factory: Any, *, name: str | None = None,
                 options: dict[str, Any] | None = None, ddp: bool | None = None,
                 folder: Path | None = None) -> ConformanceReport:
    """Take the run plugin made by ``factory`` through a full run, an interrupted run and its
    resume, a run where another plugin fails, its options three ways and (``ddp=None``: when
    MPI is installed) a 2-rank run; raise ``PluginCheckError`` naming every problem.

    ``name`` is the name the plugin is registered under (default: the factory's ``name``, or
    its class name in kebab-case); if an installed plugin registers that name already (your
    package, installed), that registration is used. ``options`` gives values to try for options
    whose values cannot be guessed (strings, paths); numbers, booleans and choices are guessed.
    """
    from trainkit.plugin.options import option_specs

    name = registered_name(factory, name)
    report = ConformanceReport(name)
    own = tempfile.mkdtemp(prefix="trainkit-check-") if folder is None else None
    root = Path(folder or own or ".")
    try:
        extra = [] if installed_as(name, factory) else [Registers(name, factory)]
        specs = option_specs(factory)
        Checks(name, extra, specs, options or {}, root, report).run_all(ddp)
    finally:
        if own is not None:
            shutil.rmtree(own, ignore_errors=True)
    if report.problems:
        raise PluginCheckError(f"plugin {name!r} does not conform:\n" +
                               "\n".join(f"- {p}" for p in report.problems))
    return report


def installed_as(name: str, factory: Any) -> bool:
    """True when an installed plugin already registers ``factory`` as ``name``."""
    from trainkit.errors import TrainkitError
    from trainkit.plugin.manager import get_plugin_manager
    from trainkit.plugin.registry import Registry

    registry = Registry.collect(get_plugin_manager())
    component = registry.components["plugin"].get(name)
    if component is None:
        return False
    if component.factory is factory or (isinstance(factory, type) and isinstance(
            component.factory, type) and issubclass(component.factory, factory)):
        return True
    raise TrainkitError(f"check_plugin: an installed plugin already registers {name!r} with "
                        f"{component.factory!r}; pass name= to check yours under another name")


class Checks:
    def __init__(self, name, extra, specs, options, root, report) -> None:
        self.name, self.extra, self.specs = name, extra, specs
        self.options, self.root, self.report = options, root, report

    def train(self, out: str, *args: str, plugins=(), env=None, cwd=None):
        observer = Observer(self.name)
        result = run_cli(["run", "--plugin", self.name, "--epochs", str(EPOCHS), "--batch-size",
                          str(BATCH), "--out", out, *args],
                         plugins=[*self.extra, observer, *plugins], cwd=cwd or self.root, env=env)
        return result, observer

    def problem(self, text: str) -> None:
        self.report.problems.append(text)

    def run_all(self, ddp: bool | None) -> None:
        whole, seen = self.train("whole")
        if whole.exit_code != 0:
            self.problem(f"a full run failed (exit {whole.exit_code}): {last_line(whole)}")
            return
        if not seen.found:
            self.problem(f"the run did not use a plugin named {self.name!r}")
            return
        self.report.ran.append("a full run")
        again, seen_again = self.train("again")
        self.resume(whole, seen, again, seen_again)
        self.another_fails()
        self.options_three_ways()
        self.data_parallel(ddp)

    def resume(self, whole, seen, again, seen_again) -> None:
        cut, _ = self.train("cut", plugins=[InterruptAt(INTERRUPT_AT_STEP)])
        if cut.exit_code != 130:
            self.problem(f"a run interrupted mid-epoch (as by Ctrl+C) should end with exit 130 "
                         f"and an emergency checkpoint; it ended with {cut.exit_code}: "
                         f"{last_line(cut)}")
            return
        resumed, seen_resumed = self.train("cut", "--resume", "cut")
        if resumed.exit_code != 0:
            self.problem(f"resuming an interrupted run failed (exit {resumed.exit_code}): "
                         f"{last_line(resumed)}")
            return
        self.report.ran.append("an interrupted run and its resume")
        stable = {k for k, v in seen.state.items() if seen_again.state.get(k) == v}
        for key in sorted(stable):
            if seen_resumed.state.get(key) != seen.state[key]:
                self.problem(
                    f"your plugin's state after resume differs: `{key}` was "
                    f"{short(seen_resumed.state.get(key))}, expected {short(seen.state[key])} "
                    f"-- save it in on_save_checkpoint and restore it in on_load_checkpoint "
                    f"(state[{self.name!r}])")
        for epoch, (row, row_again, row_resumed) in enumerate(
                zip(whole.history, again.history, resumed.history), 1):
            for key, value in row.items():
                if row_again.get(key) == value and row_resumed.get(key) != value:
                    self.problem(f"the history after resume differs: `{key}` at epoch {epoch} "
                                 f"was {short(row_resumed.get(key))}, expected {short(value)}")
        import numpy as np

        from trainkit.persist.checkpoint_io import load_checkpoint

        weights = [load_checkpoint(r.checkpoints["final.npz"])[1] for r in (whole, resumed)]
        if any(not np.array_equal(weights[0][k], weights[1][k]) for k in weights[0]
               if k.startswith("model/")):
            self.problem("the weights after resume differ from an uninterrupted run's: the "
                         "plugin changes training with state a checkpoint does not hold")

    def another_fails(self) -> None:
        failed, _ = self.train("fails", plugins=[FailsAtEpoch2()])
        text = failed.output
        if failed.exit_code != 1 or "check-fails" not in text:
            self.problem(f"when another plugin fails, the run should end naming that plugin "
                         f"(exit 1); it ended with {failed.exit_code}: {last_line(failed)}")
        elif f"plugin '{self.name}' failed" in text or f"plugin {self.name!r} failed" in text:
            self.problem(f"when another plugin failed, your plugin failed too, in "
                         f"on_exception or on_fit_end: {last_line(failed)}")
        else:
            self.report.ran.append("a run where another plugin fails")

    def option_values(self) -> dict[str, Any]:
        values = {}
        for spec in self.specs:
            if spec.name in self.options:
                values[spec.name] = self.options[spec.name]
                continue
            guess = guess_value(spec)
            if guess is None:
                self.report.skipped.append(f"option {spec.name!r} (give a value in options=)")
            else:
                values[spec.name] = guess
        return values

    def options_three_ways(self) -> None:
        from trainkit.plugin.options import plugin_option_param

        values = self.option_values()
        if not values:
            return
        flags, env, toml = [], {}, [f"[{self.name}]"]
        for option, value in values.items():
            param = plugin_option_param(self.name, option)
            flag = "--" + param.replace("_", "-")
            if isinstance(value, bool):
                flags.append(flag if value else f"--no-{flag[2:]}")
            else:
                flags += [flag, cli_text(value)]
            env["TRAINKIT_" + param.upper()] = cli_text(value)
            toml.append(f"{option} = {json.dumps(value)}")
        (self.root / "options.toml").write_text("\n".join(toml) + "\n", encoding="utf-8")
        ways = {"the command line": ([*flags], None),
                "a config file": (["--config", str(self.root / "options.toml")], None),
                "the environment": ([], env)}
        for way, (args, environment) in ways.items():
            result, _ = self.train(f"options-{way.split()[-1]}", "--epochs", "1", *args,
                                 env=environment)
            if result.exit_code != 0:
                self.problem(f"options given through {way} failed (exit {result.exit_code}): "
                             f"{last_line(result)}")
                continue
            config = (result.manifest("final.npz").get("config") or {}).get(self.name) or {}
            for option, value in values.items():
                if not same(config.get(option), value):
                    self.problem(f"option {option!r} given through {way} as {value!r} did not "
                                 f"reach the run: its config says {config.get(option)!r}")
        self.report.ran.append("its options through the command line, a config file and the "
                               "environment")

    def data_parallel(self, ddp: bool | None) -> None:
        mpiexec = shutil.which("mpiexec")
        has_mpi = importlib.util.find_spec("mpi4py") is not None and mpiexec is not None
        if ddp is False or (ddp is None and not has_mpi):
            self.report.skipped.append("a 2-rank ddp run" + ("" if ddp is False else
                                                             " (mpi4py or mpiexec missing)"))
            return
        module = importable(self.extra)
        if module is None:
            self.report.skipped.append("a 2-rank ddp run (a new process cannot import the "
                                       "plugin's class: define it in an importable module)")
            return
        (self.root / "check_ddp_plugins.py").write_text(module, encoding="utf-8")
        import os

        command = [mpiexec, "-n", "2", sys.executable, "-m", "trainkit", "run", "-p",
                   "check_ddp_plugins", "--dataset", "tiny", "--plugin", "ddp", "--plugin",
                   self.name, "--epochs", "2", "--batch-size", "16", "--threads", "1", "--out",
                   "ddp"]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(self.root), *filter(None, [os.environ.get("PYTHONPATH")])])}
        done = subprocess.run(command, cwd=self.root, capture_output=True, text=True,
                              timeout=300, env=env)
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines()
            self.problem(f"a 2-rank ddp run failed (exit {done.returncode}): "
                         f"{lines[-1] if lines else ''}")
        else:
            self.report.ran.append("a 2-rank ddp run")


def importable(extra: list[Any]) -> str | None:
    """A module text that registers the tiny dataset (and the plugin under test when it is not
    installed) in a new process, or ``None`` when its factory cannot be imported there."""
    lines = ["from trainkit.testing.harness import TinyDatasetPlugin",
             "from trainkit import hookimpl", "", "tiny = TinyDatasetPlugin()"]
    for registers in extra:
        factory = registers.factory
        module, qualname = getattr(factory, "__module__", ""), getattr(factory, "__qualname__", "")
        if not module or "<" in qualname or module == "__main__":
            return None
        try:
            found = importlib.import_module(module)
        except ImportError:
            return None
        if getattr(found, qualname.split(".")[0], None) is None or module.startswith("test"):
            return None
        lines += [f"from {module} import {qualname.split('.')[0]} as factory", "",
                  "@hookimpl", "def register_run_plugins(register):",
                  f"    register({registers.plugin!r}, factory)"]
    lines += ["", "@hookimpl", "def register_datasets(register):",
              "    tiny.register_datasets(register)"]
    return "\n".join(lines) + "\n"


def guess_value(spec) -> Any:
    """A value other than the default, for options whose values can be guessed."""
    if spec.choices is not None:
        others = [c for c in spec.choices if c != spec.default]
        return others[0] if others else None
    if spec.type is bool:
        return not spec.default
    if spec.type is int and isinstance(spec.default, int):
        return spec.default + 1
    if spec.type is float and isinstance(spec.default, (int, float)):
        return spec.default * 2 if spec.default else 0.5
    return None


def cli_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


def same(recorded: Any, given: Any) -> bool:
    if isinstance(given, float) and isinstance(recorded, (int, float)):
        return abs(recorded - given) <= 1e-12 * max(1.0, abs(given))
    if isinstance(given, (list, tuple)) and isinstance(recorded, (list, tuple)):
        return list(recorded) == list(given)
    return recorded == given or str(recorded) == str(given)


def short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def last_line(result) -> str:
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    if result.exception is not None and not lines:
        return f"{type(result.exception).__name__}: {result.exception}"
    return lines[-1] if lines else "(no output)"
