"""The plugin machinery: ``contract`` (what the core reads from a plugin object), ``options``
(typed options from signatures), ``entry_points`` (the installed plugins, through a cache),
``manager`` (pluggy's manager: entry points, -p modules, blocking, checks) and ``registry``
(named components from the register_* hooks)."""
