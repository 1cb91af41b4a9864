"""What a sweep reports: its best trials, the best trial's config as TOML (``trainkit run
--config best.toml`` reproduces it), and Optuna's own plots of the optimisation history and the
parameter importances."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

#: plugins every trial runs with or without, which the best config leaves as a run has them
TRIAL_PLUGINS = {"plugin": ["history"], "no_plugin": ["progress", "console"]}


def best_config(study, spec_layer: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The best trial's full config, without its run folder and the sweep's quiet-trial
    plugins: a ``--config`` file that trains the same run."""
    try:
        trial = study.best_trial
    except ValueError:  # no complete trial
        return None
    config = dict(trial.user_attrs.get("config") or {})
    if not config:
        return None
    config.pop("out", None)
    wanted = spec_layer or {}
    for key, names in TRIAL_PLUGINS.items():
        keep = set(wanted.get(key) or [])
        config[key] = [n for n in config.get(key) or [] if n not in names or n in keep]
    for name in TRIAL_PLUGINS["plugin"]:
        if name not in config["plugin"]:
            config.pop(name, None)
    return config


def summary(study, limit: int = 5) -> str:
    """Counts by state, then a table of the best ``limit`` complete trials."""
    from optuna.study import StudyDirection
    from optuna.trial import TrialState

    from trainkit.sweep.recovery import lost

    every = study.get_trials(deepcopy=False)
    rerun = {t.user_attrs.get("retry_of") for t in every} - {None}
    # a trial lost with its worker and run again is counted once: as its rerun
    trials = [t for t in every if not (lost(t) and t.number in rerun)]
    counts = {state.name.lower(): sum(t.state == state for t in trials) for state in TrialState}
    lines = [f"study {study.study_name}: {len(trials)} trials, " + ", ".join(
        f"{n} {state}" for state, n in counts.items() if n)
        + (f" ({len(every) - len(trials)} lost with their worker, run again)"
           if len(every) > len(trials) else "")]
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None
                and math.isfinite(t.value)]
    maximize = study.direction == StudyDirection.MAXIMIZE
    complete.sort(key=lambda t: -t.value if maximize else t.value)
    if complete:
        keys = sorted({k for t in complete for k in t.params})
        header = ["trial", "value", "epochs", *keys]
        rows = [[str(t.number), f"{t.value:.4f}", str(len(t.intermediate_values)),
                 *(format_value(t.params.get(k)) for k in keys)] for t in complete[:limit]]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        lines.append("")
        lines.append("best trials:")
        for row in [header, *rows]:
            lines.append("  " + "  ".join(cell.rjust(w) for cell, w in zip(row, widths)))
    return "\n".join(lines)


def format_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def write_plots(study, folder: Path) -> list[Path]:
    """Optuna's optimisation-history and parameter-importance plots as PNGs in ``folder``
    (needs matplotlib; skipped without it, or with too few complete trials to judge)."""
    import importlib.util
    import warnings

    if importlib.util.find_spec("matplotlib") is None:
        return []
    import matplotlib

    matplotlib.use("Agg")
    from optuna.trial import TrialState
    from optuna.visualization import matplotlib as plots

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    written = []
    drawings: list[tuple[str, Any]] = [("optimization_history.png",
                                        plots.plot_optimization_history)]
    if len(complete) >= 2 and len({k for t in complete for k in t.params}) >= 1:
        drawings.append(("param_importances.png", plots.plot_param_importances))
    folder.mkdir(parents=True, exist_ok=True)
    import matplotlib

    for filename, draw in drawings:
        # Optuna's plots switch matplotlib to its ggplot style for the whole process: a
        # notebook's next plot (trainkit's curves included) would change colours
        with warnings.catch_warnings(), matplotlib.rc_context():
            warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
            try:
                axes = draw(study, target_name=study.user_attrs.get("monitor", "value"))
            except (ValueError, RuntimeError, ZeroDivisionError):  # nothing to judge yet
                continue
            figure: Any = axes.figure
            figure.set_size_inches(8, 5)
            figure.tight_layout()
            figure.savefig(folder / filename, dpi=100)
        import matplotlib.pyplot as plt

        plt.close(figure)
        written.append(folder / filename)
    return written
