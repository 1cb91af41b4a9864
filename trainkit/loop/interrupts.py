"""Ctrl+C during ``fit``, owned here (as Lightning's signal connector owns signals).

The first Ctrl+C is deferred to the next batch boundary, where the state is consistent, so the
checkpoint plugin's emergency checkpoint resumes bit-exactly; a second stops at once, in the
middle of a step, and nothing may be saved from it (``forced``). A plugin that coordinates
several processes (ddp) sets ``collective``: a local Ctrl+C then stops the loop only once that
plugin calls ``request()`` at a step every process agrees on; acting on the local signal alone
would leave the other processes waiting in a collective.

The handler itself only records. It runs between two bytecodes of the main thread, which may be
in the middle of a write to the very stream a message would go to (a progress bar's stderr:
CPython refuses the nested write, ``RuntimeError: reentrant call``) or of an import (tqdm's
first write imports multiprocessing; a nested import from the handler fails in Python 3.10's
import lock with a ``KeyError``): a failure in place of a clean stop, and under ddp an abort.
What a Ctrl+C does is said by the loop at the next batch boundary (``stop_here()``) or, after
a second Ctrl+C, where the loop unwinds (``acknowledge()``).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any


class Interrupts:
    """Ctrl+C for one Trainer: what was pressed, and the handler while ``fit`` runs."""

    def __init__(self, say: Callable[[str, str], None]) -> None:
        self.say = say
        self.collective = False
        self.requested = self.signalled = self.forced = False
        self._said = 0  # how many of the Ctrl+C presses have been said (0, 1 or 2)
        self._previous: Any = None

    def reset(self) -> None:
        self.requested = self.signalled = self.forced = False
        self._said = 0

    def request(self) -> None:
        """Stop at the next batch boundary as if Ctrl+C had been pressed here."""
        self.requested = True

    def stop_here(self) -> bool:
        """At a batch or epoch boundary, where writing is safe: say what the presses so far do
        (``acknowledge``), and whether the loop stops here."""
        self.acknowledge()
        return self.requested or (self.signalled and not self.collective)

    def install(self) -> None:
        """Handle SIGINT for the length of ``fit`` (in the main thread, where no one else has)."""
        self._previous = None
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            return
        self._previous = signal.signal(signal.SIGINT, self.handle)

    def handle(self, signum: int, frame: Any) -> None:
        """The SIGINT handler: records the press, and raises on the second. No I/O here."""
        if self.signalled:  # a second Ctrl+C: stop right now
            self.forced = True
            raise KeyboardInterrupt
        self.signalled = True

    def acknowledge(self) -> None:
        """Say, once each, what the Ctrl+C presses recorded so far do; called by the loop, where
        writing is safe, never by the handler."""
        if self.forced and self._said < 2:
            self._said = 2
            self.say("trainkit: second Ctrl+C: stopping now, without an emergency checkpoint",
                     "warning")
        elif self.signalled and self._said < 1:
            self._said = 1
            self.say("trainkit: Ctrl+C: stopping after this batch; press Ctrl+C again to stop "
                     "now without an emergency checkpoint", "warning")

    def restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


class InterruptViews:
    """What plugins read and do of the Trainer's Ctrl+C handling (its ``interrupts``)."""

    interrupts: Interrupts

    @property
    def interrupt_signalled(self) -> bool:
        """True once Ctrl+C was pressed in this process."""
        return self.interrupts.signalled

    @property
    def interrupt_forced(self) -> bool:
        """True once a second Ctrl+C stopped the run at once, in the middle of a step: the state
        is then not consistent, and nothing may be saved from it (no emergency checkpoint)."""
        return self.interrupts.forced

    @property
    def interrupt_requested(self) -> bool:
        """True once the loop has decided to stop at the next batch boundary."""
        return self.interrupts.requested

    def request_interrupt(self) -> None:
        """Stop at the next batch boundary as if Ctrl+C had been pressed here."""
        self.interrupts.request()

    @property
    def collective_interrupts(self) -> bool:
        """Set by a plugin that coordinates several processes (ddp): a Ctrl+C then stops the
        loop only once that plugin calls ``request_interrupt()``."""
        return self.interrupts.collective

    @collective_interrupts.setter
    def collective_interrupts(self, value: bool) -> None:
        self.interrupts.collective = bool(value)
