"""trainkit's built-in plugins, installed as ``trainkit.plugins``.

Each module is a plugin declared in the ``trainkit`` entry-point group, exactly as a third-party
plugin would be. None of them gets a privileged path.
"""
