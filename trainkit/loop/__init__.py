"""The training loop: ``trainer`` (the loop; it calls hooks and owns no optional feature),
``context`` (the facts of a run that are not the loop's own), ``metrics`` (states that add up),
``monitor`` (one rule for "better"), ``profiler``, ``curves`` and ``formatting``."""
