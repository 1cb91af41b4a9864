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
