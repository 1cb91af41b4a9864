"""trainkit-extras' tests, with trainkit's fixtures (installed with trainkit): the plugins are
loaded by module (-p), so these run without installing the package."""

from trainkit.testing import check_plugin
from trainkit_extras.confusion import ConfusionMatrix


def test_adagrad_trains_the_tiny_dataset(trainkit_cli):
    result = trainkit_cli(["run", "--optimizer", "adagrad", "--lr", "0.1", "--epochs", "3"],
                          modules=["trainkit_extras.adagrad"])
    assert result.exit_code == 0, result.output
    assert result.history[-1]["val_acc"] > 0.9


def test_confused_pairs_reports_and_writes_its_csv(trainkit_cli):
    result = trainkit_cli(["run", "--plugin", "confused-pairs", "--epochs", "1"],
                          modules=["trainkit_extras.confusion"])
    assert result.exit_code == 0, result.output
    assert "confused-pairs: most confused:" in result.output
    assert (result.run_dir / "confusion.csv").read_text().count("\n") == 10


def test_confused_pairs_conforms():
    check_plugin(ConfusionMatrix, name="confused-pairs", options={"top": 2})
