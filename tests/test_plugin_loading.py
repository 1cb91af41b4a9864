"""Loading plugins: -p, blocking, autoload off, broken third-party plugins, errors naming plugins."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from trainkit import hookimpl
from trainkit.cli import make_cli

REPO = Path(__file__).resolve().parent.parent


def invoke(args, plugins=()):
    return CliRunner().invoke(make_cli(plugins), args)


def quick(data_dir, *extra):
    return ["run", "--dataset", "idx", "--data-dir", str(data_dir), "--epochs", "1", "--out", "out", *extra]


@pytest.fixture
def plugin_module(tmp_path, monkeypatch):
    """An importable module ``hello_plugin`` that registers a loss and logs every epoch."""
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "hello_plugin.py").write_text(textwrap.dedent("""
        from trainkit import hookimpl
        from trainkit.plugins.losses import CrossEntropy

        class Hello(CrossEntropy):
            '''Cross-entropy under another name.'''

        @hookimpl
        def register_losses(register):
            register("hello", Hello)

        @hookimpl
        def on_epoch_end(epoch):
            print(f"hello from epoch {epoch}")
    """))
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))
    return "hello_plugin"


def test_dash_p_loads_a_module_for_one_run(synthetic_dir, plugin_module):
    result = invoke(quick(synthetic_dir, "-p", plugin_module, "--loss", "hello"))
    assert result.exit_code == 0, result.output
    assert "hello from epoch 1" in result.output
    listing = invoke(["-p", plugin_module, "plugins"])
    assert f"{plugin_module}  [-p]" in listing.output
    assert "loss       hello" in listing.output


def test_dash_p_with_an_unknown_module_is_a_usage_error(synthetic_dir):
    result = invoke(quick(synthetic_dir, "-p", "no_such_module_here"))
    assert result.exit_code == 2
    assert "-p no_such_module_here: cannot import plugin module" in result.output


def test_dash_p_no_blocks_a_plugin(synthetic_dir):
    result = invoke(quick(synthetic_dir, "-p", "no:console"))
    assert result.exit_code == 0 and "[  1/1]" not in result.output
    blocked = invoke(["-p", "no:optimizers", "plugins"])
    assert "adam" not in blocked.output


def test_disable_autoload_keeps_the_builtins(monkeypatch):
    monkeypatch.setenv("TRAINKIT_DISABLE_PLUGIN_AUTOLOAD", "1")
    result = invoke(["plugins"])
    assert result.exit_code == 0 and "optimizer  adam" in result.output


class Raising:
    name = "raising"

    @hookimpl
    def on_epoch_end(self):
        raise ValueError("bad value in my plugin")


class RaisingFactory:
    @hookimpl
    def register_run_plugins(self, register):
        register("raising", Raising)


def test_a_failing_hook_names_plugin_and_hook_with_traceback_only_under_v(synthetic_dir):
    result = invoke(quick(synthetic_dir, "--plugin", "raising"), plugins=[RaisingFactory()])
    assert result.exit_code == 1
    assert ("Error: plugin 'raising' failed in hook on_epoch_end: ValueError: bad value in "
            "my plugin") in result.output
    assert "Traceback" not in result.output
    verbose = invoke(quick(synthetic_dir, "--plugin", "raising", "-v", "--overwrite"),
                     plugins=[RaisingFactory()])
    assert verbose.exit_code == 1 and "Traceback" in verbose.output


def test_a_duplicate_name_is_refused_for_the_later_plugin_only():
    class Dup:
        @hookimpl
        def register_optimizers(self, register):
            register("adam", object)
            register("dup-only", object)

    result = invoke(["plugins"], plugins=[Dup()])
    assert result.exit_code == 0, result.output
    assert "plugin 'Dup' skipped: optimizer 'adam' is registered already, by plugin " \
           "'optimizers'" in result.output
    listing = result.output.split("Components:")[1].split("Plugins:")[0]
    assert "Adam with bias correction" in listing  # the built-in keeps its name
    assert "dup-only" not in listing  # the refused plugin registers nothing at all
    strict = invoke(["--strict-plugins", "plugins"], plugins=[Dup()])
    assert strict.exit_code == 1 and "Traceback" not in strict.output
    assert "plugin 'Dup' failed in hook register_optimizers: optimizer 'adam' is registered " \
           "already" in strict.output


class Slow:
    name = "slow"

    @hookimpl
    def on_batch_end(self):
        import time

        time.sleep(0.002)


class SlowFactory:
    @hookimpl
    def register_run_plugins(self, register):
        register("slow", Slow)


def test_profile_hooks_table_and_the_slow_plugin_warning(synthetic_dir, monkeypatch):
    import trainkit.loop.profiler

    monkeypatch.setattr(trainkit.loop.profiler, "WARN_AFTER_SECONDS", 0.0)
    result = invoke(quick(synthetic_dir, "--plugin", "slow", "--profile-hooks"),
                    plugins=[SlowFactory()])
    assert result.exit_code == 0, result.output
    assert "warning: plugin 'slow' takes" in result.output
    assert result.output.count("warning: plugin 'slow'") == 1
    row = next(line for line in result.output.splitlines() if line.startswith("slow "))
    assert row.split()[1:3] == ["on_batch_end", "8"]


# ----------------------------------------------------------------- broken third-party plugins


def fake_distribution(folder: Path, name: str, module: str, body: str) -> None:
    """A minimal installed distribution with one entry point in group trainkit."""
    dist = folder / f"{name.replace('-', '_')}-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[trainkit]\n{name} = {module}\n")
    (folder / f"{module}.py").write_text(textwrap.dedent(body))


def trainkit_cli(args, path: Path, **env):
    environment = {**os.environ, "PYTHONPATH": str(path), **env}
    return subprocess.run([sys.executable, "-m", "trainkit", *args], capture_output=True,
                          text=True, env=environment, timeout=120)


@pytest.fixture
def broken_site(tmp_path) -> Path:
    site = tmp_path / "site"
    fake_distribution(site, "broken-import", "broken_import_mod",
                      "raise ImportError('needs the missing package frobnicate')\n")
    fake_distribution(site, "broken-register", "broken_register_mod", """
        from trainkit import hookimpl

        @hookimpl
        def register_optimizers(register):
            raise RuntimeError("cannot register")
    """)
    return site


def test_broken_plugins_are_skipped_with_a_warning_and_commands_keep_working(
        broken_site, synthetic_dir, tmp_path):
    help_result = trainkit_cli(["--help"], broken_site)
    assert help_result.returncode == 0 and "Commands:" in help_result.stdout
    assert ("trainkit: warning: plugin 'broken-import' skipped: import failed: ImportError: needs "
            "the missing package frobnicate") in help_result.stderr
    assert "plugin 'broken-register' skipped: register_optimizers failed" in help_result.stderr
    run = trainkit_cli(quick(synthetic_dir, "--out", str(tmp_path / "o")), broken_site)
    assert run.returncode == 0, run.stderr
    assert "[  1/1]" in run.stdout and "broken-import" in run.stderr
    assert "Traceback" not in run.stderr


def test_strict_plugins_makes_a_broken_plugin_fail_clearly(broken_site, synthetic_dir):
    for args in (["--strict-plugins", "--help"], ["run", "--strict-plugins", "--data-dir",
                                                  str(synthetic_dir)]):
        result = trainkit_cli(args, broken_site)
        assert result.returncode == 1
        assert ("Error: plugin 'broken-import' could not be imported: ImportError: needs the "
                "missing package frobnicate") in result.stderr
        assert "Traceback" not in result.stderr


@pytest.fixture
def mistaken_site(tmp_path) -> Path:
    """Installed side by side: a package that re-registers adam, one whose hook has a wrong
    argument name, one with a typo'd hook name, and another adagrad next to the example
    package trainkit-extras (which registers adagrad too)."""
    site = tmp_path / "site"
    fake_distribution(site, "dup-adam", "dup_adam_mod", """
        from trainkit import hookimpl

        @hookimpl
        def register_optimizers(register):
            register("adam", object)
    """)
    fake_distribution(site, "wrong-argument", "wrong_argument_mod", """
        from trainkit import hookimpl

        @hookimpl
        def register_optimizers(registr):
            pass
    """)
    fake_distribution(site, "typo-hook", "typo_hook_mod", """
        from trainkit import hookimpl

        @hookimpl
        def on_epoch_ends(trainer):
            pass
    """)
    fake_distribution(site, "other-adagrad", "other_adagrad_mod", """
        from trainkit import hookimpl

        @hookimpl
        def register_optimizers(register):
            register("adagrad", object)
    """)
    extras = site / "trainkit_extras-0.1.dist-info"
    extras.mkdir()
    (extras / "METADATA").write_text("Metadata-Version: 2.1\nName: trainkit-extras\n"
                                     "Version: 0.1\n")
    (extras / "entry_points.txt").write_text("[trainkit]\nadagrad = trainkit_extras.adagrad\n"
                                             "confused-pairs = trainkit_extras.confusion\n")
    return site


def test_mistaken_plugins_side_by_side_are_each_named_once_and_every_command_works(
        mistaken_site, synthetic_dir, tmp_path):
    path = os.pathsep.join([str(mistaken_site), str(REPO / "examples" / "trainkit-extras")])
    for args in (["--help"], ["plugins"], quick(synthetic_dir, "--out", str(tmp_path / "o"))):
        result = trainkit_cli(args, path)
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        warnings_ = [line for line in result.stderr.splitlines() if "warning: plugin" in line]
        for name in ("dup-adam", "wrong-argument", "typo-hook"):
            assert sum(f"plugin {name!r}" in line for line in warnings_) == 1, (name, warnings_)
        assert sum("adagrad" in line for line in warnings_) == 1  # the later one only
    assert "(did you mean on_epoch_end?)" in result.stderr
    assert "takes 'registr', which trainkit does not pass" in result.stderr
    assert "-p no:dup-adam or pip uninstall dup-adam" in result.stderr
    strict = trainkit_cli(["--strict-plugins", "plugins"], path)
    assert strict.returncode == 1 and "Traceback" not in strict.stderr
    errors = [line for line in strict.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and "plugin '" in errors[0]


def test_a_module_under_test_that_is_installed_too_registers_once(tmp_path):
    """The docs' testing recipe, make_cli(plugins=[module]), with that module installed."""
    import trainkit.plugins.history as installed_module

    result = invoke(["plugins"], plugins=[installed_module])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output


def test_dash_p_no_with_an_unknown_name_fails_for_every_command():
    for command in (["plugins"], ["run", "--help"]):
        result = invoke(["-p", "no:nothing-like-it", *command])
        assert result.exit_code == 2 and "unknown plugin 'nothing-like-it'" in result.output


def test_the_entry_point_cache_sees_a_package_installed_changed_or_removed(tmp_path):
    site, cache = tmp_path / "site", tmp_path / "cache"
    ok = "from trainkit import hookimpl\n"
    fake_distribution(site, "first-extra", "first_extra_mod", ok)
    listed = trainkit_cli(["plugins"], site, TRAINKIT_CACHE_DIR=str(cache))
    assert "first-extra" in listed.stdout and list((cache / "entry-points").glob("*.json"))
    again = trainkit_cli(["plugins"], site, TRAINKIT_CACHE_DIR=str(cache))  # from the cache
    assert again.stdout == listed.stdout
    fake_distribution(site, "second-extra", "second_extra_mod", ok)  # installed
    assert "second-extra" in trainkit_cli(["plugins"], site, TRAINKIT_CACHE_DIR=str(cache)).stdout
    declared = site / "first_extra-1.0.dist-info" / "entry_points.txt"  # changed in place
    (site / "renamed_mod.py").write_text(ok)
    declared.write_text("[trainkit]\nrenamed-extra = renamed_mod\n")
    os.utime(declared, ns=(declared.stat().st_atime_ns, declared.stat().st_mtime_ns + 10**9))
    changed = trainkit_cli(["plugins"], site, TRAINKIT_CACHE_DIR=str(cache)).stdout
    assert "\n  renamed-extra  [" in changed and "\n  first-extra  [" not in changed
    shutil.rmtree(site / "second_extra-1.0.dist-info")  # removed
    assert "second-extra" not in trainkit_cli(["plugins"], site,
                                              TRAINKIT_CACHE_DIR=str(cache)).stdout


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["plugins"], ["run", "--help"],
                                  ["evaluate", "--help"], ["predict", "--help"], ["sweep", "--help"]])
def test_commands_that_train_nothing_import_no_numpy_and_no_integration(args):
    heavy = ["numpy", "tensorboardX", "tensorboard", "mlflow", "matplotlib", "mpi4py", "optuna"]
    code = ("import sys\nfrom trainkit.cli import main\ntry:\n    main(sys.argv[1:])\n"
            "except SystemExit:\n    pass\n"
            f"print([m for m in {heavy!r} if m in sys.modules], file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                            timeout=120)
    assert result.stderr.strip().splitlines()[-1] == "[]", result.stderr


class Unmarked:
    def on_epoch_end(self, trainer):  # no @hookimpl: it would never run
        pass

    @hookimpl
    def on_fit_start(self, trainer):
        pass


class DoesNothing:
    def helper(self):
        pass


class DictOption:
    def __init__(self, weights: dict[str, float] | None = None) -> None:
        self.weights = weights

    @hookimpl
    def on_fit_start(self, trainer):
        pass


class MistakesFactory:
    @hookimpl
    def register_run_plugins(self, register):
        register("unmarked", Unmarked)
        register("does-nothing", DoesNothing)


class DictOptionFactory:
    @hookimpl
    def register_run_plugins(self, register):
        register("dict-option", DictOption)


def test_silent_mistakes_are_warned_about_and_errors_under_strict_plugins():
    result = invoke(["plugins"], plugins=[MistakesFactory()])
    assert result.exit_code == 0, result.output
    assert "run plugin 'unmarked': on_epoch_end is named like a hook but is not marked " \
           "@hookimpl, so it never runs" in result.output
    assert "run plugin 'does-nothing' implements no hook, so it does nothing" in result.output
    strict = invoke(["--strict-plugins", "plugins"], plugins=[MistakesFactory()])
    assert strict.exit_code == 1 and "Traceback" not in strict.output
    assert "Error: plugin 'MistakesFactory' looks mistaken: run plugin 'unmarked'" in strict.output


def test_an_option_type_the_command_line_cannot_parse_is_refused_at_registration():
    result = invoke(["plugins"], plugins=[DictOptionFactory()])
    assert result.exit_code == 0, result.output
    assert "plugin 'DictOptionFactory' skipped: plugin 'dict-option': option 'weights' is " \
           "typed dict[str, float] | None, which the command line cannot parse; the supported " \
           "types are bool, int, float, str" in result.output
    components = result.output.split("Components:")[1].split("Plugins:")[0]
    assert "dict-option" not in components
    assert "DictOptionFactory  [skipped]" in result.output


class HalfSGDPlugin:
    name = "half-sgd-plugin"

    @hookimpl
    def register_optimizers(self, register):
        from trainkit.plugins.optimizers import SGD

        register("half-sgd", SGD)


def test_a_component_a_checkpoint_needs_is_named_with_the_plugin_that_provided_it(
        synthetic_dir, tmp_path):
    trained = invoke(quick(synthetic_dir, "--optimizer", "half-sgd", "--out", "run"),
                     plugins=[HalfSGDPlugin()])
    assert trained.exit_code == 0, trained.output
    needle = "was trained with optimizer 'half-sgd' from plugin 'half-sgd-plugin', which is " \
             "not installed"
    for args in (["evaluate", "run"], ["run", "--resume", "run", "--epochs", "2"]):
        result = invoke(args)
        assert result.exit_code != 0 and needle in result.output, result.output
        assert "--optimizer" not in result.output and "Traceback" not in result.output


def test_plugins_hooks_lists_every_lifecycle_hook_and_marks_run_plugins_that_are_off():
    result = invoke(["plugins", "--hooks"])
    assert result.exit_code == 0, result.output
    lines = {line.split(":")[0].strip(): line for line in result.output.splitlines()[1:]}
    assert {"on_train_end", "on_test_end", "on_exception", "on_save_checkpoint"} <= set(lines)
    epoch_end = lines["on_epoch_end"]
    assert "run:checkpoint ->" in epoch_end and "run:checkpoint (off)" not in epoch_end
    assert "run:early-stopping (off)" in epoch_end
    # the reporters come last, after the plugins that may add to the logs
    assert epoch_end.index("run:early-stopping") < epoch_end.index("run:console")


def test_the_old_register_plugins_hook_still_registers_run_plugins_with_a_warning():
    from trainkit.plugin.manager import get_plugin_manager
    from trainkit.plugin.registry import Registry

    class Counter:
        @hookimpl
        def on_epoch_end(self):
            pass

    class OldStyle:
        @hookimpl
        def register_plugins(self, register):
            register("old-style", Counter)

    pm = get_plugin_manager()
    pm.register_given(OldStyle())
    with pytest.warns(DeprecationWarning, match="implements register_plugins, now called "
                                                "register_run_plugins"):
        registry = Registry.collect(pm)
    assert "old-style" in registry.names("plugin")


@pytest.mark.parametrize("plugin,package,extra", [
    ("tensorboard", "tensorboardX", "tensorboard"), ("mlflow", "mlflow", "mlflow"),
    ("plot", "matplotlib", "plot"), ("confusion-matrix", "matplotlib", "plot")])
def test_an_integration_without_its_package_is_one_line_naming_the_extra(
        plugin, package, extra, synthetic_dir, monkeypatch):
    import importlib.util

    from click.testing import CliRunner

    from trainkit.cli import make_cli

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == package else real(name, *a))
    result = CliRunner().invoke(make_cli(), ["run", "--dataset", "idx", "--data-dir",
                                             str(synthetic_dir), "--plugin", plugin])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"pip install 'trainkit[{extra}]'" in result.output


def test_an_installed_plugin_named_like_a_builtin_is_refused_and_the_builtin_stays(
        synthetic_dir, tmp_path):
    # what `pip install` of a package made by `trainkit new-plugin trainkit-checkpoint` (before
    # it refused that name) leaves on sys.path, ahead of trainkit's own entry points
    site = tmp_path / "site"
    dist = site / "trainkit_checkpoint-0.1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: trainkit-checkpoint\n"
                                   "Version: 0.1.0\n")
    (dist / "entry_points.txt").write_text("[trainkit]\ncheckpoint = trainkit_checkpoint\n")
    (site / "trainkit_checkpoint.py").write_text(textwrap.dedent("""
        from trainkit import hookimpl

        class Checkpoint:
            @hookimpl
            def on_epoch_end(self, trainer):
                pass

        @hookimpl
        def register_run_plugins(register):
            register("checkpoint", Checkpoint, default=True)
    """))
    out = tmp_path / "run"
    result = trainkit_cli(quick(synthetic_dir, "--out", str(out)), site)
    assert result.returncode == 0, result.stderr
    assert (out / "last.npz").exists() and (out / "final.npz").exists()
    assert ("trainkit: warning: plugin name 'checkpoint' of trainkit-checkpoint 0.1.0 is already "
            "trainkit's built-in: trainkit-checkpoint's is not loaded (rename its entry point, or "
            "use it instead with -p no:checkpoint -p trainkit_checkpoint)") in result.stderr
    listing = trainkit_cli(["plugins"], site)
    assert "trainkit-checkpoint" not in listing.stdout.replace("trainkit-checkpoint's", "")


def test_two_installed_packages_with_one_plugin_name_load_the_first_and_name_both(tmp_path):
    site = tmp_path / "site"
    for package in ("first-extra", "second-extra"):
        dist = site / f"{package.replace('-', '_')}-1.0.dist-info"
        dist.mkdir(parents=True)
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 1.0\n")
        (dist / "entry_points.txt").write_text(f"[trainkit]\nshared = {package.replace('-', '_')}\n")
        (site / f"{package.replace('-', '_')}.py").write_text("")
    result = trainkit_cli(["plugins"], site)
    assert result.returncode == 0, result.stderr
    warning = [line for line in result.stderr.splitlines() if "plugin name 'shared'" in line]
    assert len(warning) == 1 and "already" in warning[0]
    assert {"first-extra", "second-extra"} <= set(warning[0].replace("'s", " ").split())


def test_a_wrapper_of_a_hook_trainkit_calls_one_by_one_is_refused_with_a_warning():
    """on_save_checkpoint and register_* are called implementation by implementation: a wrapper
    there could wrap nothing, and used to be skipped without a word."""
    import types
    import warnings

    from trainkit.plugin.manager import PluginInfo, PluginWarning, get_plugin_manager
    from trainkit.plugin.registry import Registry

    class Wrapping:  # a run plugin
        @hookimpl(wrapper=True)
        def on_save_checkpoint(self, state):
            state["wrapping"] = {"seen": True}
            return (yield)

    runs = types.ModuleType("wrapping_runs")
    runs.register_run_plugins = hookimpl(lambda register: register("wrapping", Wrapping))
    registers = types.ModuleType("wrapping_registers")
    registers.register_losses = hookimpl(wrapper=True)(lambda register: (yield))
    pm = get_plugin_manager(autoload=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PluginWarning)
        for name, module in (("wrapping-runs", runs), ("wrapping-registers", registers)):
            pm.register_checked(module, name, PluginInfo(name, "entry point", name, "1.0"),
                                strict=False)
        registry = Registry.collect(pm)
    said = [str(w.message) for w in caught if issubclass(w.category, PluginWarning)]
    assert any(m.startswith("plugin 'wrapping-runs' skipped") and "run plugin 'wrapping': hook "
               "on_save_checkpoint is a wrapper, which trainkit never runs" in m for m in said), said
    assert any(m.startswith("plugin 'wrapping-registers' skipped") and "hook register_losses is "
               "a wrapper, which trainkit never runs" in m for m in said), said
    assert "wrapping" not in registry.components["plugin"]
