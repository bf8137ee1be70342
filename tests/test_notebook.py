"""convshape in a real Jupyter kernel (nbclient): the HTML report as a cell's output, the table as its
text, and Source naming the notebook cell (``cell [1]:9``) instead of IPython's temporary file."""

from __future__ import annotations

import os
import re

import nbformat
import pytest
from nbclient import NotebookClient

from .conftest import ROOT

MODEL_CELL = """\
import torch.nn.functional as F
from torch import nn
import convshape

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.fc = nn.Linear(4 * 26 * 26, 10)

    def forward(self, x):
        x = F.relu(self.conv(x))
        return self.fc(x.flatten(1))
"""


@pytest.fixture(scope="module")
def executed() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(MODEL_CELL),
        nbformat.v4.new_code_cell('trace = convshape.trace_model(Net(), "2x1x28x28")\ntrace'),
        nbformat.v4.new_code_cell("print(trace)"),
        nbformat.v4.new_code_cell("[n for n in dir(convshape) if not n.startswith('_')]"),
    ]
    # the kernel imports this checkout's convshape, whatever is installed
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    os.environ["PYTHONPATH"], before = path, os.environ.get("PYTHONPATH")
    try:
        NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    finally:
        if before is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = before
    return nb


def test_a_trace_displays_as_the_html_report(executed: nbformat.NotebookNode) -> None:
    (result,) = [o for o in executed.cells[1].outputs if o.output_type == "execute_result"]
    html = result.data["text/html"]
    assert html.startswith('<div class="convshape">')
    assert re.search(r">conv</td><td class=\"type\">Conv2d</td><td>\[2, 1, 28, 28\]</td><td>\[2, 4, 26, 26\]</td>",
                     html.replace('<span class="tog"></span>', ""))
    assert "cell [1]:12" in html  # self.conv(x) is line 12 of the first cell
    text = result.data["text/plain"]
    assert text.startswith("Net  input [2, 1, 28, 28] float32") and "Trainable params" in text


def test_print_gives_the_table_with_cell_sources(executed: nbformat.NotebookNode) -> None:
    (stream,) = executed.cells[2].outputs
    lines = stream.text.splitlines()
    conv = next(line for line in lines if line.strip().startswith("conv "))
    assert conv.rstrip().endswith("cell [1]:12"), conv
    fc = next(line for line in lines if line.strip().startswith("fc "))
    assert fc.rstrip().endswith("cell [1]:13"), fc
    assert not [line for line in lines if re.search(r"\d{6,}\.py:\d", line)]  # no IPython temp file names


def test_dir_lists_the_api_in_a_kernel(executed: nbformat.NotebookNode) -> None:
    (result,) = executed.cells[3].outputs
    names = result.data["text/plain"]
    for name in ("trace_model", "parameters", "fc_size", "Trace", "TraceError"):
        assert f"'{name}'" in names
