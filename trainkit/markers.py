"""The pluggy markers. ``trainkit.hookimpl`` is what plugin authors import."""

import pluggy

PROJECT_NAME = "trainkit"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
