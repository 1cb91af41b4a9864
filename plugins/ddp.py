"""ddp: synchronous data-parallel training over MPI, with mpi4py.

    mpiexec -n 2 trainkit run --plugin ddp --batch-size 32

Every rank builds the same model from the same seed and draws the same data order; each takes its
own slice of every global batch (``--batch-size`` per rank, times the number of ranks). After each
backward pass, one ``Allreduce`` over a single flat buffer sums the sample-weighted gradients
together with the batch's metric state (sample count, loss, every metric's counts) and a Ctrl+C
flag, so every rank takes the same optimizer step and sees the same global numbers: the console,
history, early stopping and the NaN guard decide identically everywhere. Validation and test
states are summed the same way before their values are computed, so a metric such as F1 is
exact over the whole split, not an average of the ranks' F1. Batch norm normalises each rank's own
batch (as PyTorch's DistributedDataParallel does without SyncBatchNorm), and its running
statistics are averaged over the ranks in that same Allreduce, so every rank holds the same
statistics after every step. Only rank 0 shows progress and writes
files. The ranks' weights are compared at every epoch end (and every ``check_every`` steps); a
divergence stops the run on every rank. An exception on one rank aborts the whole job
(``MPI_Abort``), so no rank waits forever in a collective another rank has left.
"""

from __future__ import annotations

import sys
import time

from trainkit import hookimpl
from trainkit.errors import ConfigError, PluginError, TrainkitError
from trainkit.lazy import lazy_import

np = lazy_import("numpy")


class DivergenceError(TrainkitError):
    """The ranks' weights are no longer identical."""


class DDP:
    """Data-parallel training across MPI processes (run under mpiexec).

    Args:
        check_every: also compare the ranks' weights every this many steps (0: at epoch ends only).
    """

    slow_hooks_expected = True  # the allreduce is the work: no slow-plugin warning for it

    def __init__(self, check_every: int = 0) -> None:
        try:
            from mpi4py import MPI
        except ImportError:
            raise ConfigError(missing_mpi_message(), "plugin") from None
        if check_every < 0:
            raise ConfigError(f"check_every must be 0 or more, got {check_every}", "check_every")
        self.MPI, self.comm = MPI, MPI.COMM_WORLD
        self.rank, self.world = self.comm.Get_rank(), self.comm.Get_size()
        self.check_every = check_every
        self.is_main_process = self.rank == 0
        local_ranks = self.comm.Split_type(MPI.COMM_TYPE_SHARED).Get_size()
        from trainkit.session.threads import available_cores

        # One BLAS thread per core this rank can have: more would oversubscribe the machine.
        self.preferred_threads = max(1, available_cores() // local_ranks)
        # this process's own statistics (not state to resume: the leading _ says so)
        self._allreduce_seconds = 0.0
        self._allreduce_calls = 0
        self.name = "ddp"
        self._buffer: np.ndarray | None = None

    @property
    def allreduce_seconds(self) -> float:
        """Seconds this process spent in the per-step allreduce."""
        return self._allreduce_seconds

    @property
    def allreduce_calls(self) -> int:
        """Per-step allreduces this process made."""
        return self._allreduce_calls

    # ------------------------------------------------------------------ setup

    @hookimpl(tryfirst=True)
    def on_fit_start(self, trainer):
        if getattr(trainer, "accumulation", None) is not None:
            from trainkit.errors import ConfigError

            raise ConfigError("ddp sums each batch's gradients and metrics at its optimizer "
                              "step: --accumulate is not supported under ddp yet; give each "
                              "rank a larger --batch-size instead", "accumulate")
        trainer.collective_interrupts = True  # Ctrl+C is decided by all ranks together, below
        trainer.train_loader.shard(self.rank, self.world)
        trainer.val_loader = self.shard_for_scoring(trainer.val_loader)
        trainer.test_loader = self.shard_for_scoring(trainer.test_loader)
        states = getattr(trainer.model, "states", np.empty(0, np.float32))
        self._states = states  # batch norm's running statistics, averaged in the same Allreduce
        # the batch's metric state (counts: exact in float32 up to 2**24) and a Ctrl+C flag
        extras = trainer.metric_set.size + 1
        self._buffer = np.empty(trainer.model.grads.size + states.size + extras, dtype=np.float32)

    def shard_for_scoring(self, loader):
        """This rank's contiguous part of a validation or test loader."""
        if loader is None or self.world == 1:
            return loader
        part = np.array_split(np.arange(len(loader.labels)), self.world)[self.rank]
        start, stop = (int(part[0]), int(part[-1]) + 1) if len(part) else (0, 0)
        return loader.part(start, stop)

    # ------------------------------------------------------------------ every step

    @hookimpl(tryfirst=True)
    def on_before_optimizer_step(self, trainer):
        grads, buffer, batch_state = trainer.model.grads, self._buffer, trainer.batch_state
        size = grads.size
        n_local = batch_state[0]
        np.multiply(grads, n_local / trainer.train_loader.global_batch_size, out=buffer[:size])
        states = self._states
        if states.size:
            np.multiply(states, np.float32(1 / self.world), out=buffer[size:size + states.size])
        extras = buffer[size + states.size:]
        extras[:-1] = batch_state
        extras[-1] = 1.0 if trainer.interrupt_signalled else 0.0
        start = time.perf_counter()
        self.comm.Allreduce(self.MPI.IN_PLACE, buffer, op=self.MPI.SUM)
        self._allreduce_seconds += time.perf_counter() - start
        self._allreduce_calls += 1
        grads[...] = buffer[:size]
        if states.size:
            states[...] = buffer[size:size + states.size]
        batch_state[:] = extras[:-1]
        if extras[-1] > 0:
            trainer.request_interrupt()  # Ctrl+C on any rank: every rank stops at this step

    @hookimpl
    def on_batch_end(self, trainer):
        if self.check_every and trainer.state.global_step % self.check_every == 0:
            self.check_weights(trainer)

    # ------------------------------------------------------------------ every epoch

    @hookimpl
    def on_evaluation_state(self, state):
        """Sum the ranks' validation or test states (float64), so every value is the split's."""
        self.comm.Allreduce(self.MPI.IN_PLACE, state, op=self.MPI.SUM)

    @hookimpl(tryfirst=True)
    def on_epoch_end(self, trainer):
        self.check_weights(trainer)

    def check_weights(self, trainer) -> None:
        import hashlib

        digest = np.frombuffer(hashlib.sha256(trainer.model.params.tobytes()
                                              + self._states.tobytes()).digest(), np.uint8)
        digests = np.empty((self.world, digest.size), np.uint8)
        self.comm.Allgather(digest, digests)  # the buffer call: the lower-case one pickles
        differ = [r for r in range(1, self.world) if not np.array_equal(digests[r], digests[0])]
        if differ:
            raise DivergenceError(
                f"the weights of rank(s) {differ} differ from rank 0's at step "
                f"{trainer.state.global_step}; the ranks no longer train the same model")

    @hookimpl
    def on_fit_end(self, trainer):
        if trainer.context.is_main_process and self.allreduce_calls:
            each = self.allreduce_seconds / self.allreduce_calls
            share = self.allreduce_seconds / trainer.loop_seconds if trainer.loop_seconds else 0
            trainer.say(f"trainkit: ddp: {self.world} ranks, {self.allreduce_calls} allreduces "
                        f"of {self._buffer.nbytes:,} bytes, {each * 1e3:.3f} ms each ({share:.1%} "
                        f"of the training time)", "info")

    # ------------------------------------------------------------------ failures

    @hookimpl(trylast=True)  # after the checkpoint plugin has written its emergency checkpoint
    def on_exception(self, trainer, exception):
        # Raised at the same step on every rank: a Ctrl+C agreed through the allreduce, or
        # ddp's own errors (wrapped by the hook caller, naming ddp): a divergence every rank saw,
        # a refused config, which every rank shares. Anything else may be this rank's alone.
        own = exception.error if isinstance(exception, PluginError) and \
            exception.plugin == self.name else None
        consistent = isinstance(exception, DivergenceError) or \
            isinstance(own, (DivergenceError, ConfigError)) or (  # the config is every rank's
                isinstance(exception, KeyboardInterrupt) and trainer.interrupt_requested)
        if consistent and not self.is_main_process and isinstance(exception, TrainkitError):
            exception.reported_elsewhere = True  # rank 0 says it, once for the job
        if self.world > 1 and not consistent:  # every rank says it: it may be this one alone
            print(f"trainkit: rank {self.rank} failed ({type(exception).__name__}: {exception}); "
                  f"aborting all {self.world} ranks", file=sys.stderr, flush=True)
            self.comm.Abort(1)


def missing_mpi_message() -> str:
    """What to install for ddp: the ``mpi`` extra brings an MPI library (mpich's wheels) on Linux
    and macOS; on Windows there is no such wheel, and mpi4py needs Microsoft MPI installed."""
    if sys.platform == "win32":
        return ("plugin 'ddp' needs Microsoft MPI on Windows: install MS-MPI (msmpisetup.exe "
                "from Microsoft), then pip install 'trainkit[mpi]'")
    return "plugin 'ddp' needs mpi4py: pip install 'trainkit[mpi]'"


@hookimpl
def register_run_plugins(register):
    register("ddp", DDP)
