"""The names of trainkit 0.1.0's ``trainkit.run``, kept for code written against it (the
``trainkit.run`` path imports this module, with a warning, until 0.3.0): what was one module of
five ideas is now ``config`` (defaults, merging, checks), ``assembly`` (``Run``, ``resolve``,
``build``), ``resume`` (checkpoints reopened, resume rules) and ``status`` (run.json). trainkit
itself imports those."""

from __future__ import annotations

from trainkit.session.assembly import (
    Run,
    build,
    build_model,
    component_sources,
    default_run_dir,
    effective_config,
    resolve,
    to_plain,
    validation_split,
)
from trainkit.session.config import (
    RUN_DEFAULTS,
    SINGLE_KINDS,
    check_config_file,
    check_file_value,
    component_option_owners,
    did_you_mean,
    enabled_plugins,
    merge_configs,
    names_of,
)
from trainkit.session.resume import (
    FIXED_ON_RESUME,
    check_components_installed,
    check_resume_keys,
    open_checkpoint,
    refuse_changes,
    resume_changes,
    show,
)
from trainkit.session.status import (
    STATUS_FILE,
    write_status,
)

__all__ = ["FIXED_ON_RESUME", "RUN_DEFAULTS", "Run", "SINGLE_KINDS", "STATUS_FILE", "build",
           "build_model", "check_components_installed", "check_config_file", "check_file_value",
           "check_resume_keys", "component_option_owners", "component_sources", "default_run_dir",
           "did_you_mean", "effective_config", "enabled_plugins", "merge_configs", "names_of",
           "open_checkpoint", "refuse_changes", "resolve", "resume_changes", "show", "to_plain",
           "validation_split", "write_status"]
