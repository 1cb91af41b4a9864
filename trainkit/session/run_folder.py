"""A run folder: which checkpoint it hands over, whether it holds a run, and making it ready.

A run folder holds one run: its checkpoints (``last.npz``, ``best.npz``, ``final.npz``,
``emergency.npz``, ``epoch-NNN.npz``), ``run.json`` and the files plugins write. A folder holding
any of them is not trained in again unless the run resumes it or is told to clear it.
"""

from __future__ import annotations

from pathlib import Path

from trainkit.errors import CheckpointError, ConfigError

RESUMABLE = ("last.npz", "emergency.npz")


def newest_checkpoint(folder: Path) -> Path | None:
    """The newer of a run folder's ``last.npz`` and ``emergency.npz``, if it has either."""
    found = [folder / name for name in RESUMABLE if (folder / name).is_file()]
    return max(found, key=lambda p: p.stat().st_mtime_ns) if found else None


def model_in_run_folder(folder: Path) -> Path:
    """The model a run folder hands over: ``final.npz``, else its newest resumable checkpoint."""
    if (folder / "final.npz").is_file():
        return folder / "final.npz"
    found = newest_checkpoint(folder)
    if found is None:
        raise CheckpointError(f"{folder}: run folder holds no final.npz, last.npz or "
                              f"emergency.npz")
    return found


def resolve_resume_path(value: str | Path, out: Path | None) -> Path:
    """``--resume``: a checkpoint file, a run folder, or ``last`` (the newest run under
    ``runs/``, or the ``--out`` folder)."""
    if str(value) == "last":
        folders = [Path(out)] if out is not None else [p for p in Path("runs").glob("*")
                                                      if p.is_dir()]
        candidates = [c for c in map(newest_checkpoint, folders) if c is not None]
        if not candidates:
            where = out if out is not None else "runs/"
            raise CheckpointError(f"--resume last: no checkpoint (last.npz or emergency.npz) "
                                  f"in {where}")
        return max(candidates, key=lambda p: p.stat().st_mtime_ns)
    path = Path(value)
    if path.is_dir():
        found = newest_checkpoint(path)
        if found is None:
            started = (" (its run stopped before the end of its first epoch, so there is "
                       "nothing to resume: start afresh there with --overwrite)"
                       if (path / "run.json").is_file() else "")
            raise CheckpointError(f"{path}: run folder holds no last.npz or emergency.npz"
                                  f"{started}")
        return found
    return path


#: Files that only a run writes: a folder holding one of them holds a run.
RUN_FILES = ("run.json", "last.npz", "best.npz", "final.npz", "emergency.npz", "history.csv")


def holds_a_run(folder: Path) -> bool:
    if not folder.is_dir():
        return False
    return any((folder / name).exists() for name in RUN_FILES) or \
        any(folder.glob("epoch-*.npz"))


def clear_run_dir(folder: Path) -> None:
    """Remove everything in a run folder but its lock file and the lock's owner record."""
    import shutil

    from trainkit.session.run_lock import LOCK_NAME, OWNER_NAME

    for entry in folder.iterdir():
        if entry.name in (LOCK_NAME, OWNER_NAME):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def prepare_run_dir(run_dir: Path) -> None:
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: run folder exists and is not a folder", "out")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"{run_dir}: cannot create run folder ({e.strerror})", "out") from None


def progress_in(folder: Path) -> int:
    """The furthest optimizer step that a checkpoint in ``folder`` was saved at (0: none)."""
    names = [*RESUMABLE, "final.npz", *(p.name for p in folder.glob("epoch-*.npz"))]
    return max([0, *(step_of(folder / name) or 0 for name in names)])


def step_of(checkpoint: Path) -> int | None:
    """The optimizer step ``checkpoint`` was saved at, from its manifest alone (``None`` when it
    cannot be read)."""
    import json
    import zipfile

    from trainkit.persist.checkpoint_io import MANIFEST

    try:
        with zipfile.ZipFile(checkpoint) as zf:
            return int(json.loads(zf.read(MANIFEST)).get("global_step") or 0)
    except (OSError, KeyError, ValueError, TypeError, AttributeError, zipfile.BadZipFile):
        return None


def set_aside_later_files(folder: Path, resumed: Path, epoch: int, global_step: int
                          ) -> Path | None:
    """Resuming ``folder``'s run from ``resumed`` (a checkpoint of ``epoch`` and ``global_step``)
    when the run had gone further: the later run is kept in ``folder/superseded-<time>/``, which
    is returned. Its checkpoints (later epochs, ``last``/``final``/``emergency.npz``, a later
    ``best.npz``) move there, since the resumed run would overwrite them; every other file and
    folder (``history.csv``, ``run.json``, plugins' logs) is copied there and stays in place,
    for the plugins that continue their own files from the resumed step (TensorBoard's). The
    resumed checkpoint, the epoch checkpoints up to ``epoch`` and a ``best.npz`` from before
    it stay. ``None`` (nothing moved) when the run had not gone further."""
    import datetime as _dt
    import re
    import shutil

    from trainkit.session.run_lock import LOCK_NAME, OWNER_NAME

    if progress_in(folder) <= global_step:
        return None
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    aside = folder / f"superseded-{stamp}"
    n = 1
    while aside.exists():
        n += 1
        aside = folder / f"superseded-{stamp}-{n}"
    aside.mkdir()
    resumed = resumed.resolve()
    best = step_of(folder / "best.npz")
    for entry in sorted(folder.iterdir()):
        earlier = re.fullmatch(r"epoch-(\d+)\.npz", entry.name)
        if (entry.name in (LOCK_NAME, OWNER_NAME) or entry == aside
                or entry.name.startswith("superseded-") or entry.resolve() == resumed
                or (earlier and int(earlier.group(1)) <= epoch)
                or (entry.name == "best.npz" and best is not None and best <= global_step)):
            continue
        if entry.suffix == ".npz":  # the resumed run would overwrite it: moved
            entry.rename(aside / entry.name)
        elif entry.is_dir() and not entry.is_symlink():  # plugins continue their own files:
            shutil.copytree(entry, aside / entry.name, symlinks=True)  # a copy is kept
        else:
            shutil.copy2(entry, aside / entry.name)
    return aside


def refusal_of_a_used_folder(out: Path) -> str:
    """Why a run folder holding an earlier run is not trained in, and what to do: resume it,
    unless it left nothing to resume from (stopped before its first checkpoint)."""
    if newest_checkpoint(out) is None:
        return (f"{out} holds an earlier run that saved no checkpoint to resume from (stopped "
                f"before the end of its first epoch); start afresh there with --overwrite, or "
                f"train elsewhere with another --out")
    return (f"{out} holds an earlier run; resume it with --resume {out}, train elsewhere with "
            f"another --out, or clear it with --overwrite")
