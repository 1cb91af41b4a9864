"""progress draws a tqdm bar (forced here, since tests have no terminal); console prints one line
per epoch in the notebook's format."""

from __future__ import annotations

from click.testing import CliRunner

from trainkit.cli import make_cli
from trainkit.plugins.console import format_epoch


def test_console_line_format():
    logs = {"loss": 0.1234, "acc": 0.9641, "val_loss": 0.1011, "val_acc": 0.9692, "lr": 0.001}
    assert format_epoch(3, 10, logs) == \
        "[  3/10] loss: 0.123 acc: 0.964 | val_loss: 0.101 val_acc: 0.969"
    assert format_epoch(12, 1000, {"loss": 1.0}) == "[  12/1000] loss: 1.000"


def test_progress_bar_when_forced(synthetic_dir):
    result = CliRunner().invoke(make_cli(), ["run", "--dataset", "idx", "--data-dir", str(synthetic_dir),
                                             "--epochs",
                                             "1", "--out", "run", "--progress-force",
                                             "--progress-refresh", "0"])
    assert result.exit_code == 0, result.output
    assert "epoch 1/1" in result.output and "8/8" in result.output
    assert "loss=" in result.output and "acc=" in result.output


def test_no_bar_off_a_terminal(synthetic_dir):
    result = CliRunner().invoke(make_cli(), ["run", "--dataset", "idx", "--data-dir", str(synthetic_dir),
                                             "--epochs",
                                             "1", "--out", "run"])
    assert result.exit_code == 0 and "epoch 1/1" not in result.output
    assert "[  1/1] loss:" in result.output


def test_at_80_columns_the_running_loss_and_metric_stay_whole():
    import io

    from tqdm import tqdm

    from trainkit.plugins.progress import Progress

    progress = Progress()
    progress.epoch_text = "epoch 12/100"
    screen = io.StringIO()
    bar = progress.make_bar(tqdm, 938, 417, file=screen, ncols=80)
    progress.show(bar, {"loss": 0.12345, "acc": 0.96123, "top5_acc": 0.99871}, refresh=True)
    bar.close()
    line = [frame for frame in screen.getvalue().split("\r") if frame.strip()][-1]
    assert len(line) <= 80
    assert line.startswith("epoch 12/100 loss=0.1235 acc=0.9612 ")
    assert "|" in line  # the bar gave way, narrowed, but is still there


def test_integer_logs_print_as_integers():
    line = format_epoch(1, 2, {"loss": 0.5, "seen": 137, "val_loss": 0.25, "val_seen": 12})
    assert line == "[  1/2] loss: 0.500 seen: 137 | val_loss: 0.250 val_seen: 12"


def test_plugin_messages_go_through_one_channel_that_a_plugin_can_take_over(synthetic_dir):
    from trainkit import hookimpl

    class Collector:
        name = "collector"
        seen: list = []

        @hookimpl(tryfirst=True)
        def on_message(self, message, level):
            self.seen.append((level, message))
            return True

    class SaysHello:
        name = "says-hello"

        @hookimpl
        def on_fit_start(self, trainer):
            trainer.say("trainkit: says-hello: hello", "warning")

    result = CliRunner().invoke(make_cli([Collector(), SaysHello()]), [
        "run", "--dataset", "idx", "--data-dir", str(synthetic_dir), "--epochs", "1", "--out",
        "run"])
    assert result.exit_code == 0, result.output
    assert ("warning", "trainkit: says-hello: hello") in Collector.seen
    assert "says-hello: hello" not in result.output  # the collector took it
