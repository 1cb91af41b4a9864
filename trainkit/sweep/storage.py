"""Optuna storages for sweeps: SQLite (the default), a journal file, or a database server, with
Optuna's heartbeat; the driver a database URL needs, named when it is missing."""

from __future__ import annotations

import random
import time
import warnings
from pathlib import Path

from trainkit.errors import ConfigError

SWEEP_EXTRA = "pip install 'trainkit[sweep]'"


HEARTBEAT_SECONDS = 30


#: heartbeats a worker may miss before its trial is lost
GRACE_BEATS = 4


def import_optuna():
    try:
        import optuna
    except ImportError:
        raise ConfigError(f"trainkit sweep needs optuna: {SWEEP_EXTRA}") from None
    # trainkit reports each trial itself, a failed one with its reason (Optuna's own line would
    # add a traceback for every Ctrl+C and NaN)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return optuna


def importable(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError, AttributeError):
        return False


def database_url(url: str) -> str:
    """``url`` for SQLAlchemy: ``postgresql://`` names psycopg 3 (``trainkit[postgres]``) when
    it is the driver installed, as SQLAlchemy 2.1 does and 2.0 (which looks for psycopg2) does
    not."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme in ("postgresql", "postgres") and importable("psycopg") and \
            not importable("psycopg2"):
        return f"postgresql+psycopg://{rest}"
    return url


def driver_for(url: str) -> str:
    """The pip command that brings the database driver of ``url``."""
    scheme = url.partition(":")[0].lower()
    if scheme.startswith("postgres"):
        return "pip install 'trainkit[postgres]'"
    if scheme.startswith("mysql"):
        return "pip install pymysql, with a mysql+pymysql:// URL"
    return "pip install the SQLAlchemy driver of this database"


def open_storage(url: str, heartbeat: int = HEARTBEAT_SECONDS):
    """An Optuna storage: ``journal:PATH`` is a journal file (safe on a shared filesystem),
    anything else a database URL (``sqlite:///...``, ``postgresql://...``, ``mysql://...``),
    with Optuna's heartbeat every ``heartbeat`` seconds and a grace period of four."""
    optuna = import_optuna()
    if url.startswith("journal:"):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        path = Path(url.removeprefix("journal:").removeprefix("//"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))

    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None
    for _attempt in range(5):  # workers starting at once race to create the tables
        try:
            with warnings.catch_warnings():  # Optuna calls its heartbeat experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(database_url(url),
                                                  engine_kwargs=engine_kwargs,
                                                  heartbeat_interval=heartbeat,
                                                  grace_period=GRACE_BEATS * heartbeat)
        except ImportError:  # no driver for this database
            raise ConfigError(f"storage {url!r} needs a database driver: {driver_for(url)}",
                              "storage") from None
        except ValueError as e:  # a bad URL: say which
            error: Exception = e
            break
        except Exception as e:  # noqa: BLE001 (SQL errors: a race, or a server that is down)
            error = e
            time.sleep(0.5 + random.random())
    raise ConfigError(f"storage {url!r} cannot be opened: {str(error).splitlines()[0]}",
                      "storage")
