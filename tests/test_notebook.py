"""trainkit in a real Jupyter kernel (nbclient + ipykernel): the notebook progress bar, the
curves inline, the epochs as a DataFrame."""

from __future__ import annotations

import pytest

nbformat = pytest.importorskip("nbformat", reason="the test extra installs nbclient and ipykernel")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")


def test_a_notebook_run_shows_a_widget_bar_inline_curves_and_a_dataframe(synthetic_dir, tmp_path):
    config = {"dataset": "idx", "data_dir": str(synthetic_dir), "epochs": 2, "hidden": [16],
              "threads": 1, "out": str(tmp_path / "run")}
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("from trainkit.session import Session\n"
                                  f"outcome = Session({config!r}).fit()"),
        nbformat.v4.new_code_cell("outcome.history.plot()"),
        nbformat.v4.new_code_cell("outcome.history.to_pandas()[['loss', 'val_loss']].shape"),
    ])
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    train, plot, frame = notebook.cells

    def kinds(cell):
        return {kind for output in cell.outputs for kind in output.get("data", {})}

    assert "application/vnd.jupyter.widget-view+json" in kinds(train)  # tqdm's notebook bar
    assert "[  2/2]" in "".join(o.get("text", "") for o in train.outputs)  # the console line
    assert "image/png" in kinds(plot)
    assert frame.outputs[0]["data"]["text/plain"] == "(2, 2)"


def test_the_quickstart_notebook_trains_plots_and_runs_its_callback(mnist_dir, tmp_path,
                                                                     monkeypatch):
    from .conftest import REPO

    path = REPO / "examples" / "quickstart.ipynb"
    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(not cell.outputs and cell.execution_count is None for cell in code), \
        "commit the notebook with its outputs stripped"
    (parameters,) = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    parameters.source = f"epochs = 2\nlimit_batches = 20\nout = {str(tmp_path / 'run')!r}"
    monkeypatch.setenv("TRAINKIT_DATA_DIR", str(mnist_dir))
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [output for cell in code for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the curves, inline
    text = "".join(o.get("text", "") for o in outputs)
    assert "best-epoch: val_acc" in text  # the callback written in a cell ran
    assert "best epoch: " in text
    assert (tmp_path / "run" / "final.npz").exists()
    assert "multiply-adds per sample" in text and "predicted: [" in text  # trainkit.load
    assert "'test_auc'" in text  # arrays in memory, a binary task
