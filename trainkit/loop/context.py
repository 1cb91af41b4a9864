"""``RunContext``: the facts of a run that are not the training loop's own.

Where the run writes, how it was configured, which process this is under data parallelism, and
on which BLAS threads and kernels it computes. The Session fills it in; hooks read it as
``trainer.context`` (the Trainer's attributes of the same names are views of it, kept for
plugins written before it existed). The Trainer itself is the loop: model, loss, optimizer,
metrics, state and history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class RunContext:
    #: the run folder, where checkpoints, history and run.json go (``None``: write nothing)
    run_dir: Path | None = None
    #: the run's full effective config (every default included), as checkpoints record it
    config: dict[str, Any] = field(default_factory=dict)
    #: ``False`` on a data-parallel process that must write no file
    is_main_process: bool = True
    #: trainkit's thread count for this run, and the BLAS kernels it uses, recorded in
    #: checkpoints: results are bit-identical only for the same count and kernels
    threads: int | None = None
    blas_kernels: str | None = None
    #: the threads BLAS itself runs on: ``threads``, or 1 for a model that splits its whole
    #: work over trainkit's threads (a convnet)
    blas_threads: int | None = None
    #: where each component came from (kind, name, plugin, package, version)
    component_sources: list[dict[str, Any]] = field(default_factory=list)
    #: what each class is, in label order, from the dataset (``None`` when not known)
    class_names: tuple[str, ...] | None = None
    #: classification, binary or regression (``trainkit.data.loader.TASKS``)
    task: str = "classification"
    #: the numbers the model gives per sample (classes, 1 for a binary task, targets' width)
    outputs: int | None = None
    #: how raw inputs become the model's (a table's schema), JSON; None for arrays and images
    preprocessing: dict[str, Any] | None = None
    #: one input's shape as the dataset stores it (``(28, 28)`` for MNIST): what ``predict``
    #: checks new inputs against
    image_shape: tuple[int, ...] | None = None
    #: the range of the training inputs as the model sees them (uint8 pixels: ``(0.0, 1.0)``):
    #: what ``predict`` checks new float inputs against
    input_range: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.run_dir is not None:
            self.run_dir = Path(self.run_dir)


#: The RunContext fields a Trainer also exposes as attributes.
CONTEXT_FIELDS = ("run_dir", "config", "is_main_process", "threads", "blas_threads", "blas_kernels",
                  "component_sources", "class_names", "image_shape", "input_range")


def add_context_views(cls: type) -> None:
    """Give ``cls`` (the Trainer) a property per field of ``CONTEXT_FIELDS`` that reads and
    writes ``self.context``'s (``trainer.run_dir`` is ``trainer.context.run_dir``), for plugins
    written before the context existed. Deprecated (trainkit.deprecated): each use warns."""
    import warnings

    def warn(name: str) -> None:
        warnings.warn(f"trainer.{name} is now trainer.context.{name} (or the hook's context "
                      f"argument); the view stops working in trainkit 0.3.0",
                      DeprecationWarning, stacklevel=3)

    def view(name: str) -> property:
        def get(owner: Any) -> Any:
            warn(name)
            return getattr(owner.context, name)

        def set_(owner: Any, value: Any) -> None:
            warn(name)
            setattr(owner.context, name, value)

        return property(get, set_, doc=f"``trainer.context.{name}`` (see trainkit.loop.context).")

    for name in CONTEXT_FIELDS:
        setattr(cls, name, view(name))
