"""A run from a config: ``session`` (Session and Outcome, what ``trainkit run`` and Python users
drive), ``run`` (config merging, checks, assembly, resume rules), ``run_folder`` and
``run_lock`` (one run per folder), ``threads``, ``snapshot`` (a trainer's state as arrays and
JSON), ``evaluation`` and ``inference`` (a checkpoint on a split, or on new inputs), ``tomlio``.

``from trainkit.session import Session`` is the public path; the classes are imported when first
asked for, so that ``trainkit --help`` loads none of this layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trainkit.session.session import Outcome, Session

__all__ = ["Outcome", "Session"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from trainkit.session import session

        return getattr(session, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
