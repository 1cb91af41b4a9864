"""``Session``: one training run, from a config to a finished run folder.

The CLI, the Python API, sweeps and tests all start runs through it, so each gets the same
behaviour: the config checked (file keys named in errors), a resume restored bit-exactly, the
run folder locked and refused when it holds another run, the thread count chosen, and
``run.json`` true at every moment.

    from trainkit.session import Session

    outcome = Session({"epochs": 2, "out": "runs/a"}).fit()
    outcome = Session({"epochs": 4}, resume="runs/a").fit()   # continues runs/a, bit-exactly

``trainkit run`` is a thin layer over it: it turns its arguments into a config layer, runs a
Session, and maps the outcome to an exit code.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainkit.errors import ConfigError
from trainkit.loop.formatting import format_value
from trainkit.session import assembly, resume
from trainkit.session import config as run_config

#: ``report(message, error)``: how a session talks to its user. The CLI passes click's echo;
#: the default prints to stdout, and to stderr when ``error``.
Report = Callable[[str, bool], None]


def print_report(message: str, error: bool = False) -> None:
    print(message, file=sys.stderr if error else sys.stdout, flush=True)


@dataclass
class Outcome:
    """How a session's run ended: ``status`` is completed, stopped (a plugin stopped it), nan,
    or interrupted (Ctrl+C)."""

    status: str
    run: assembly.BuiltRun
    history: Any = None
    test_logs: dict[str, float] | None = None
    message: str = ""  # why a nan run stopped, for the caller to raise or show

    @property
    def trainer(self):
        return self.run.trainer

    def __repr__(self) -> str:
        """One line: how it ended, after how many epochs, its test scores and run folder (not
        the registry and the dataset's arrays that a dataclass repr would print)."""
        epochs = len(self.history) if self.history is not None else 0
        test = {k: round(v, 4) for k, v in (self.test_logs or {}).items()}
        return (f"Outcome(status={self.status!r}, epochs={epochs}, test_logs={test}, "
                f"run_dir={str(self.run_dir) if self.run_dir else None!r})")

    @property
    def run_dir(self) -> Path | None:
        return self.run.run_dir


class Session:
    """One run. ``config`` is a config layer (the keys of a TOML config file, or of
    ``--print-config``); ``config_file`` a TOML file under it; ``resume`` a checkpoint, a run
    folder or ``"last"`` to continue; ``overwrite`` clears a run folder that holds an earlier
    run; ``plugins`` are extra plugin objects registered next to the installed ones (or pass
    ``pm`` and ``registry`` already built, as the CLI does); ``verbose`` prints the model's
    summary when training starts. ``data`` trains on arrays in memory instead of a dataset:
    ``(x, y)`` (a seeded test split is held out) or a dict of ``x_train, y_train, x_test,
    y_test``, read as ``--dataset arrays`` reads a file (the task from the targets)."""

    def __init__(self, config: dict[str, Any] | None = None, *, config_file: Path | str | None = None,
                 resume: Path | str | None = None, overwrite: bool = False,
                 plugins: Sequence[object] = (), pm=None, registry=None,
                 report: Report = print_report, ambient: Collection[str] = (),
                 verbose: bool = False, data: Any = None) -> None:
        if pm is None:
            from trainkit.plugin.manager import get_plugin_manager
            from trainkit.plugin.registry import Registry

            pm = get_plugin_manager()
            for plugin in plugins:
                pm.register_given(plugin)
            registry = Registry.collect(pm)
        self.pm, self.registry = pm, registry
        self.layer = dict(config or {})
        self.config_file = Path(config_file) if config_file is not None else None
        self.resume, self.overwrite, self.report = resume, overwrite, report
        self.ambient, self.verbose = frozenset(ambient), verbose
        self.data = in_memory(data) if data is not None else None
        if self.data is not None:
            self.layer.setdefault("dataset", "arrays")
        self.run: assembly.Run | None = None  # resolved (resolve)
        self.built: assembly.BuiltRun | None = None  # its data, model and trainer (build)
        self.resume_from: Path | None = None
        self.manifest: dict[str, Any] | None = None
        self.changes: list[str] = []
        self._saved: dict[str, Any] | None = None
        self._arrays: dict[str, Any] | None = None
        self.lr_auto = False  # --lr auto, until the lr finder has run (fit)

    # ------------------------------------------------------------------ config

    def resolve(self) -> assembly.Run:
        """Merge the layers (checkpoint, file, this config), check them and create the
        components; nothing is loaded or written yet."""
        from trainkit.session.tomlio import read_toml

        layers = []
        if self.resume is not None:
            from trainkit.persist.checkpoint_io import load_checkpoint
            from trainkit.session.run_folder import resolve_resume_path

            self.resume_from = resolve_resume_path(self.resume, self.layer.get("out"))
            self.manifest, self._arrays = load_checkpoint(self.resume_from)
            resume.check_components_installed(self.manifest, self.registry, self.pm,
                                              str(self.resume_from))
            # Checkpoints from before the validation split validated on the test split.
            self._saved = {"val_split": 0.0, **(self.manifest.get("config") or {})}
            layers.append(self._saved)
        file_layer = read_toml(self.config_file) if self.config_file is not None else None
        if file_layer is not None:
            layers.append(file_layer)
        layers.append(self.layer)
        config = run_config.merge_configs(*layers)
        if self.resume_from is not None:
            assert self._saved is not None  # read with the checkpoint
            resume.check_resume_keys(self._saved, config, str(self.resume_from))
            if "out" not in self.layer:
                config["out"] = str(self.resume_from.parent)
        if file_layer is not None:  # its mistakes are the file's, not flags the user typed
            on = run_config.enabled_plugins(run_config.merge_configs(run_config.RUN_DEFAULTS, config),
                                        self.registry)
            run_config.check_config_file(file_layer, self.registry, on, str(self.config_file))
        self.lr_auto = config.get("lr") == "auto"
        if self.lr_auto:  # the optimizer is made with its default lr until the sweep has run
            del config["lr"]
        self.run = self.components_of(config)
        if self.lr_auto:
            from trainkit.session.lr_find import check_lr_auto

            check_lr_auto(self.run, self.resume_from)
        if self.resume_from is not None:
            assert self._saved is not None and self.manifest is not None
            self.changes = resume.resume_changes(self._saved, self.run, str(self.resume_from))
            check_epochs_left(self.run.config["epochs"], self.manifest, self.resume_from)
        return self.run

    def components_of(self, config: dict[str, Any]) -> assembly.Run:
        """``config``'s components, made afresh, reading this session's ``data=`` if given."""
        run = assembly.resolve(config, self.registry, ambient=self.ambient)
        if self.data is not None:
            if not hasattr(run.dataset, "arrays"):
                raise ConfigError(f"data=... is read by dataset arrays, not "
                                  f"{run.config['dataset']}", "dataset")
            run.dataset.arrays = self.data
        return run

    def effective_config(self) -> dict[str, Any]:
        """The full config this session trains with, every default included."""
        config = assembly.effective_config(self.run or self.resolve())
        if self.lr_auto:  # not swept yet
            config["lr"] = "auto"
        return config

    # ------------------------------------------------------------------ build and fit

    def build(self) -> assembly.BuiltRun:
        """Refuse a folder that holds another run, load the data, build the trainer and
        restore the checkpoint being resumed."""
        from trainkit.session.run_folder import holds_a_run, refusal_of_a_used_folder

        run = self.run or self.resolve()
        out = Path(run.config["out"]) if run.config.get("out") else None
        if out is not None and run.is_main_process and not self.continuing(out) and \
                not self.overwrite and holds_a_run(out):
            raise ConfigError(refusal_of_a_used_folder(out), "out")
        run = self.built = assembly.build(run, self.pm)
        from trainkit.loop.monitor import check_monitors

        check_monitors(run.plugins, run.trainer.logged_names(validation=run.val_loader is not None))
        if self.resume_from is not None:
            from trainkit.session.snapshot import restore

            trainer = run.trainer
            assert self.manifest is not None and self._arrays is not None
            assert self._saved is not None
            restore(trainer, self.manifest, self._arrays, source=str(self.resume_from))
            if self._saved.get("lr") != trainer.context.config.get("lr"):  # a new lr is applied
                trainer.optimizer.lr = trainer.context.config["lr"]
        return run

    def model_summary(self) -> Any:
        """The model this session would train, layer by layer (``trainkit.nn.summary``); the
        dataset is read for its input shape and classes, nothing is written."""
        import numpy as np

        from trainkit.nn.summary import summarize

        run = self.run or self.resolve()
        splits = run.dataset.load()
        layer_types = {name: c.factory for name, c in self.registry.components["layer"].items()}
        model = assembly.build_model(run.model_factory, splits, np.random.default_rng(0),
                                     layer_types)
        shape = getattr(model, "input_shape", None) or (splits.input_size,)
        return summarize(model, shape, run.config["batch_size"])

    def continuing(self, out: Path) -> bool:
        """True when this session resumes the run of its own run folder."""
        return self.resume_from is not None and out.resolve() == self.resume_from.parent.resolve()

    def fit(self) -> Outcome:
        """Train: lock the run folder (the main process), choose the threads, fit, and keep
        ``run.json``'s status true. Ctrl+C ends it with status ``interrupted``."""
        from trainkit.session.run_folder import clear_run_dir, holds_a_run, prepare_run_dir
        from trainkit.session.run_lock import RunLock

        run = self.built or self.build()
        if not run.trainer.context.is_main_process:  # other data-parallel ranks write nothing
            return self._train(run)
        prepare_run_dir(run.run_dir)
        with RunLock(run.run_dir) as lock:
            if lock.stale_owner:
                self.report(f"trainkit: took over the lock of process "
                            f"{lock.stale_owner.get('pid')}, which is no longer running", True)
            if self.overwrite and not self.continuing(run.run_dir) and holds_a_run(run.run_dir):
                clear_run_dir(run.run_dir)  # under the lock: never a folder a live run uses
                self.report(f"trainkit: cleared {run.run_dir} (--overwrite)", True)
            if self.continuing(run.run_dir):
                self.set_aside_a_later_past(run)
            return self._train(run)

    def set_aside_a_later_past(self, run: assembly.BuiltRun) -> None:
        """Resuming a run folder from a checkpoint older than the run's newest state: the files
        of the later epochs move aside, never overwritten, and a line says where."""
        from trainkit.session.run_folder import set_aside_later_files

        assert self.manifest is not None and self.resume_from is not None
        epoch, step = int(self.manifest["epoch"]), int(self.manifest["global_step"])
        aside = set_aside_later_files(run.run_dir, self.resume_from, epoch, step)
        if aside is not None:
            self.report(f"trainkit: resuming from epoch {epoch} ({self.resume_from.name}) a run "
                        f"that had gone further: its later checkpoints moved to {aside}, with a "
                        f"copy of its other files", True)

    def _train(self, run: assembly.BuiltRun) -> Outcome:
        from trainkit.session.status import write_status
        from trainkit.session.threads import blas_kernels, run_threads, using_threads

        trainer = run.trainer
        main = trainer.context.is_main_process
        say = self.report if main else (lambda message, error=False: None)
        threads_wanted, split_batch = run_threads(run, self.manifest, say)
        if run.config["val_split"] == 0:
            say("trainkit: warning: --val-split 0 validates on the test split: best.npz, early "
                "stopping and plateau schedules then pick on test data", True)
        if self.lr_auto:  # swept on the run's threads: the lr is part of the run's bits
            from trainkit.session.lr_find import use_the_suggested_lr

            with using_threads(threads_wanted, split_batch):
                use_the_suggested_lr(run, self.components_of(dict(run.config)), self.pm, say)
            self.lr_auto = False
        status = "failed"
        if main:
            write_status(run, "running")
        try:
            with using_threads(threads_wanted, split_batch) as threads:
                context = trainer.context
                context.threads, context.blas_kernels = threads, blas_kernels()
                context.blas_threads = 1 if split_batch else threads
                self.announce(run, threads, say)
                try:
                    trainer.fit(run.train_loader, run.val_loader, epochs=run.config["epochs"],
                                test=run.test_loader)
                except KeyboardInterrupt:
                    status = "interrupted"
                    say(f"trainkit: interrupted at epoch {trainer.state.epoch + 1}, "
                        f"step {trainer.state.step_in_epoch}; run folder {run.run_dir}", True)
                    return Outcome(status, run, trainer.history, trainer.test_logs)
            status = trainer.stop_reason or "completed"
        finally:
            if main:
                write_status(run, status)
        outcome = Outcome(status, run, trainer.history, trainer.test_logs)
        if status == "nan":
            outcome.message = (f"training stopped by nan-guard: "
                               f"{trainer.stop_message or 'the loss is not finite'}; the last "
                               f"good checkpoint (if any) is in {run.run_dir}")
            return outcome
        why = f" ({trainer.stop_message})" if trainer.stop_message else ""
        scores = ""
        if trainer.test_logs:
            scores = "; " + " ".join(f"{k}: {format_value(v, 4)}"
                                     for k, v in trainer.test_logs.items())
        say(f"trainkit: {status} after epoch {trainer.state.epoch}{why}{scores}; "
            f"run folder {run.run_dir}", False)
        return outcome

    def announce(self, run: assembly.BuiltRun, threads: int, say) -> None:
        """The line that says what is being trained (and what a resume changed)."""
        trainer = run.trainer
        recorded = self.manifest.get("blas_kernels") if self.manifest is not None else None
        if recorded and recorded != trainer.context.blas_kernels:
            say(f"trainkit: note: {self.resume_from} was written with BLAS {recorded}, this run "
                f"uses {trainer.context.blas_kernels}: it can differ in the last bits from a run that was "
                "never interrupted", True)
        what = "training"
        if self.resume_from is not None:
            state = trainer.state
            where = f"after epoch {state.epoch}" if not state.step_in_epoch else \
                f"in epoch {state.epoch + 1} after step {state.step_in_epoch}"
            what = f"resuming from {self.resume_from} {where}:"
            if self.changes:
                say(f"trainkit: resuming with changes: {'; '.join(self.changes)}", False)
        config = run.config
        on_threads = describe_threads(threads, getattr(trainer.model, "splits_batch", False))
        say(f"trainkit: {what} {config['model']} ({trainer.model.describe()}) on "
            f"{config['dataset']} with {config['optimizer']}, "
            f"{plural(config['epochs'], 'epoch')} in all, batch {config['batch_size']}, "
            f"{on_threads}; run folder {run.run_dir}", False)
        splits = run.splits
        pixels = splits.train_images.dtype.name == "uint8"
        if splits.task != "classification" or pixels and splits.name == "arrays":
            scaled = ", uint8 inputs scaled to [0, 1] (/255)" if pixels else ""
            classes = f" ({', '.join(splits.class_names or ())})" if splits.task == "binary" else ""
            say(f"trainkit: a {splits.task} task{classes}: loss {type(trainer.loss).__name__}, "
                f"{splits.outputs} output(s){scaled}", False)
        if self.verbose:
            from trainkit.nn.summary import summarize

            shape = getattr(trainer.model, "input_shape", None) or (run.splits.input_size,)
            say(summarize(trainer.model, shape, config["batch_size"]).table(), False)


def in_memory(data: Any) -> dict[str, Any]:
    """``Session(data=...)`` as the arrays dataset's names: ``(x, y)`` or a dict."""
    import numpy as np

    if isinstance(data, dict):
        return {str(k): np.asarray(v) for k, v in data.items()}
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return {"x": np.asarray(data[0]), "y": np.asarray(data[1])}
    raise ConfigError("data must be (x, y) or a dict of x_train, y_train, x_test, y_test",
                      "data")


def describe_threads(threads: int, split_batch: bool) -> str:
    """``1 BLAS thread``, or for a model that splits the batch over its own threads (a convnet,
    BLAS on one) ``2 threads, each on part of the batch``."""
    if split_batch and threads > 1:
        return f"{threads} threads, each on part of the batch"
    return plural(threads, "BLAS thread")


def check_epochs_left(epochs: int, manifest: dict[str, Any], source: Path) -> None:
    """A resume must have an epoch left to train."""
    done = int(manifest.get("epoch") or 0)
    mid_epoch = bool((manifest.get("state") or {}).get("step_in_epoch"))
    if epochs < done or (epochs == done and not mid_epoch):
        raise ConfigError(f"{source} has trained {done} epochs already, and this run asks for "
                          f"{epochs} in all: nothing is left to train; give --epochs more than "
                          f"{done} to train further", "epochs")


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
