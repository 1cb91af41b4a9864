"""Time spent in each plugin's lifecycle hooks, to find the plugin that slows training down.

During ``fit`` the Trainer calls every lifecycle hook implementation itself, in pluggy's order
and with pluggy's argument rule, between two ``perf_counter`` calls (well under a microsecond
each), so the profiler is always on; pluggy's ``HookImpl`` objects are never touched (a hook with
a wrapper is left to pluggy, untimed): a plugin that takes
more than ``WARN_SHARE`` of the training loop's time earns one warning naming it, and
``--profile-hooks`` prints the full table. A plugin whose hooks are the work itself (the ddp
plugin's allreduce) sets ``slow_hooks_expected = True`` and is only shown in the table.
"""

from __future__ import annotations

from dataclasses import dataclass

from trainkit.plugin import contract

#: The hooks the profiler times: the training loop's own, called every epoch or batch.
TIMED_HOOKS = (
    "on_fit_start", "on_epoch_start", "on_batch_start", "on_before_optimizer_step",
    "on_batch_end", "on_validation_start", "on_validation_end", "on_epoch_end",
)
WARN_SHARE = 0.10
WARN_AFTER_SECONDS = 2.0  # toy runs are too short to judge a plugin by


@dataclass
class HookStat:
    calls: int = 0
    total: float = 0.0
    max: float = 0.0

    def add(self, elapsed: float) -> None:
        self.calls += 1
        self.total += elapsed
        if elapsed > self.max:
            self.max = elapsed


class HookProfiler:
    """Calls, total and max time of every plugin's lifecycle hooks during one ``fit``; the
    Trainer's hook caller times each implementation it calls (pluggy's ``HookImpl`` objects are
    left as they are)."""

    #: the hooks it times: the training loop's own
    hooks = TIMED_HOOKS

    def __init__(self) -> None:
        self.stats: dict[tuple[str, str], HookStat] = {}
        self.warned: set[str] = set()

    def stat(self, impl, hook_name: str) -> HookStat:
        """The record of one implementation of one hook (created on first use)."""
        plugin = impl.plugin_name.removeprefix("run:")
        if contract.read(impl.plugin, "slow_hooks_expected"):
            self.warned.add(plugin)  # its hooks are the work (ddp's allreduce): no warning
        return self.stats.setdefault((plugin, hook_name), HookStat())

    def per_plugin(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for (plugin, _), stat in self.stats.items():
            totals[plugin] = totals.get(plugin, 0.0) + stat.total
        return totals

    def slow_warnings(self, loop_seconds: float) -> list[str]:
        """One warning per plugin whose hooks take more than WARN_SHARE of the loop's time (each
        plugin once a run)."""
        if loop_seconds < WARN_AFTER_SECONDS:
            return []
        warnings = []
        for plugin, total in self.per_plugin().items():
            share = total / loop_seconds
            if share > WARN_SHARE and plugin not in self.warned:
                self.warned.add(plugin)
                worst = max((s for (p, _), s in self.stats.items() if p == plugin),
                            key=lambda s: s.total)
                hook = next(h for (p, h), s in self.stats.items() if s is worst)
                warnings.append(
                    f"trainkit: warning: plugin {plugin!r} takes {share:.0%} of the training "
                    f"time in its hooks (mostly {hook}: {worst.calls} calls, "
                    f"{worst.total / max(worst.calls, 1) * 1e3:.3g} ms each); "
                    f"--profile-hooks shows every hook")
        return warnings

    def table(self, loop_seconds: float) -> str:
        rows = sorted(self.stats.items(), key=lambda item: -item[1].total)
        lines = [f"{'plugin':<20} {'hook':<26} {'calls':>8} {'total ms':>10} {'max ms':>9} "
                 f"{'share':>7}"]
        for (plugin, hook), stat in rows:
            if stat.calls == 0:
                continue
            share = stat.total / loop_seconds if loop_seconds > 0 else 0.0
            lines.append(f"{plugin:<20} {hook:<26} {stat.calls:>8} {stat.total * 1e3:>10.2f} "
                         f"{stat.max * 1e3:>9.3f} {share:>7.2%}")
        lines.append(f"(share: of {loop_seconds:.2f} s spent in training epochs)")
        return "\n".join(lines)
