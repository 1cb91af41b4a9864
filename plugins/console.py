"""console: one summary line per epoch, in the notebook's format, and the test scores at the end.

    [  3/10] loss: 0.123 acc: 0.964 | val_loss: 0.101 val_acc: 0.969
    [   test] test_loss: 0.098 test_acc: 0.970
"""

from __future__ import annotations

from trainkit import hookimpl
from trainkit.loop.formatting import format_value


def format_epoch(epoch: int, epochs: int, logs: dict[str, float]) -> str:
    width = max(3, len(str(epochs)))
    train = " ".join(f"{k}: {format_value(v)}" for k, v in logs.items()
                     if not k.startswith(("val_", "test_")) and k != "lr")
    val = " ".join(f"{k}: {format_value(v)}" for k, v in logs.items() if k.startswith("val_"))
    return f"[{epoch:{width}d}/{epochs}] {train}" + (f" | {val}" if val else "")


class Console:
    """Print one summary line per epoch (through tqdm, so progress bars stay intact)."""

    @hookimpl(trylast=True)  # after plugins that add to the logs: they are reported too
    def on_epoch_end(self, trainer, epoch, logs):
        if trainer.context.is_main_process:
            from tqdm import tqdm

            tqdm.write(format_epoch(epoch, trainer.epochs, logs))

    @hookimpl
    def on_message(self, message, level):
        """Messages go above any progress bar: through tqdm, stderr unless they are info."""
        import sys

        from tqdm import tqdm

        tqdm.write(message, file=sys.stdout if level == "info" else sys.stderr)
        return True

    @hookimpl
    def on_test_end(self, trainer, logs):
        if trainer.context.is_main_process:
            from tqdm import tqdm

            width = max(3, len(str(trainer.epochs)))
            scores = " ".join(f"{k}: {format_value(v)}" for k, v in logs.items())
            tqdm.write(f"[{'test':>{2 * width + 1}}] {scores}")


@hookimpl
def register_run_plugins(register):
    register("console", Console, default=True)
