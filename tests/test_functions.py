"""Function rows: the user's own torch calls appear with their source lines; torch's internals fold."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import convshape

from .conftest import ASSETS, EXAMPLES, line_of, load_file

zoo = load_file(ASSETS / "zoo.py")


def test_calls_inside_torch_modules_fold_into_their_row() -> None:
    trace = convshape.trace_model(load_file(EXAMPLES / "mnist_net.py").M(), "64x784")
    names = [r.name for r in trace.function_rows()]
    assert "conv2d" not in names and "linear" not in names  # inside nn.Conv2d / nn.Linear
    assert names == ["view", "relu", "max_pool2d", "relu", "max_pool2d", "view", "relu"]


def test_function_rows_carry_the_users_line() -> None:
    path = EXAMPLES / "mnist_net.py"
    trace = convshape.trace_model(load_file(path).M(), "64x784")
    views = [r for r in trace.rows if r.name == "view"]
    assert views[0].source == line_of(path, "x.view(-1, 1, 28, 28)")
    assert views[1].source == line_of(path, "x.view(x.size(0), -1)")
    assert trace.rows[2].source == line_of(path, "F.relu(self.conv1(x))")  # conv1's call site


def test_operators_indexing_cat_and_stack() -> None:
    model = zoo.TwoInputs()
    trace = convshape.trace_model(model, "5x6", "5x2x9")
    ops = [(r.name, r.op) for r in trace.function_rows()]
    assert ops == [("amax", "Tensor.amax"), ("add", "Tensor.add"), ("getitem", "x[...]"),
                   ("stack", "torch.stack")]
    add = next(r for r in trace.rows if r.name == "add")
    assert add.input_shapes == ((5, 4), (5, 4))
    a_row = next(r for r in trace.rows if r.name == "a")
    b_amax = next(r for r in trace.rows if r.name == "amax")
    assert add.inputs_from == (a_row.index, b_amax.index)


def test_size_and_shape_queries_are_not_rows() -> None:
    class Q(nn.Module):
        def forward(self, x):
            n, c = x.shape[0], x.size(1)
            return x.reshape(n, c // 2, 2), x.dim()

    trace = convshape.trace_model(Q(), "3x4")
    assert [r.name for r in trace.function_rows()] == ["reshape"]


def test_functions_called_from_helpers_in_user_code_appear() -> None:
    failing = load_file(ASSETS / "failing.py")
    with torch.no_grad():
        trace = convshape.fc_size(failing.BothWrong(), "2x3x16x16")
    assert trace.layers[0].flattened_from is not None
    assert trace.layers[0].flattened_from.flatten_op == "flatten"
    assert trace.layers[0].flattened_from.flatten_source == line_of(ASSETS / "failing.py", "x.flatten(1)")


def test_submodule_of_torch_container_rows_and_depths() -> None:
    model = zoo.Nested()
    trace = convshape.trace_model(model, "1x1x9x9")
    assert [(r.name, r.depth) for r in trace.rows] == [
        ("", 0), ("body", 1), ("body.0", 2), ("body.0.0", 3), ("body.0.1", 3), ("body.0.1.0", 4),
        ("body.0.1.1", 4), ("body.1", 2),
    ]
    assert [r.parent for r in trace.rows] == [None, 0, 1, 2, 2, 4, 4, 1]


def test_inline_module_not_in_the_tree_still_gets_a_row() -> None:
    class Inline(nn.Module):
        def forward(self, x):
            return nn.ReLU()(F.pad(x, (1, 1)))

    trace = convshape.trace_model(Inline(), "2x3")
    assert [(r.name, r.output_shapes) for r in trace.rows] == [
        ("", ((2, 5),)), ("pad", ((2, 5),)), ("<ReLU>", ((2, 5),))]


def test_dataclass_outputs_are_flattened_too() -> None:
    from dataclasses import dataclass

    @dataclass
    class Output:
        logits: torch.Tensor
        hidden: tuple[torch.Tensor, ...]
        note: str = "not a tensor"

    class WithOutput(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            h = self.fc(x)
            return Output(h, (x, h.sum(-1)))

    trace = convshape.trace_model(WithOutput(), "2x4")
    assert trace.rows[0].output_shapes == ((2, 3), (2, 4), (2,))
