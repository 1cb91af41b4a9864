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
    def register_plugins(self, register):
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


def test_duplicate_names_are_an_error_naming_both_plugins():
    class Dup:
        @hookimpl
        def register_optimizers(self, register):
            register("adam", object)

    result = invoke(["plugins"], plugins=[Dup()])
    assert result.exit_code == 1
    assert "optimizer 'adam' is registered by both plugin 'optimizers' and plugin" in result.output


class Slow:
    name = "slow"

    @hookimpl
    def on_batch_end(self):
        import time

        time.sleep(0.002)


class SlowFactory:
    @hookimpl
    def register_plugins(self, register):
        register("slow", Slow)


def test_profile_hooks_table_and_the_slow_plugin_warning(synthetic_dir, monkeypatch):
    import trainkit.profiler

    monkeypatch.setattr(trainkit.profiler, "WARN_AFTER_SECONDS", 0.0)
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


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["plugins"], ["run", "--help"]])
def test_commands_that_train_nothing_import_no_numpy(args):
    code = ("import sys\nfrom trainkit.cli import main\ntry:\n    main(sys.argv[1:])\n"
            "except SystemExit:\n    pass\nprint('numpy' in sys.modules, file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                            timeout=120)
    assert result.stderr.strip().splitlines()[-1] == "False", result.stderr
