"""Output people read where they look (issue 10): tables that fit, folded repeated blocks, files in
every format. Numbers are checked against torch (module trees, p.numel()), not against our own text."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from torch import nn
from typer.testing import CliRunner

import convshape
from convshape.cli import app
from convshape.fold import find_groups
from convshape.render import to_text
from convshape.render.columns import parse_columns
from convshape.render.graph import call_graph, trace_dot, trace_mermaid
from convshape.render.table import trace_table

from .conftest import ASSETS, EXAMPLES, load_file
from .test_golden import model_trace

runner = CliRunner()

# every example model, with an input it takes
EXAMPLE_MODELS = [
    ("mnist_net.py", "M", "64x784"), ("broken_fc.py", "BrokenNet", "64x784"), ("conv1d_basics.py", None, "2x1x2"),
    ("edge_filter.py", None, "28x28"), ("stride_vs_pool.py", None, "1x1x6x6"), ("lstm_tagger.py", None, "2x16:int64"),
    ("resnet_style.py", "resnet_small", "2x3x32x32"), ("resnet50.py", "ResNet50", "1x3x224x224"),
    ("gpt2_small.py", "GPT", "1x64:int64"), ("llama.py", "llama_tiny", "1x16:int64"),
]


def _example_trace(file: str, name: str | None, shape: str) -> convshape.Trace:
    module = load_file(EXAMPLES / file)
    if name is None:
        classes = [v for v in vars(module).values() if isinstance(v, type) and issubclass(v, nn.Module)
                   and v.__module__ == module.__name__]
        name = classes[-1].__name__
    try:
        return convshape.trace_model(getattr(module, name)(), shape, device="meta")
    except convshape.TraceError as e:
        return e.trace  # type: ignore[return-value]


def _bert() -> convshape.Trace:
    return convshape.trace_model(load_file(ASSETS / "bert_like.py").BertModel(), "8x128:int64", device="meta")


# ----------------------------------------------------------------------------------------------- widths
@pytest.mark.parametrize("width", [40, 60, 80, 100, 120])
@pytest.mark.parametrize("example", EXAMPLE_MODELS, ids=lambda e: e[0])
def test_no_line_exceeds_the_width(example: tuple[str, str | None, str], width: int) -> None:
    trace = _example_trace(*example)
    for options in ({}, {"explain": True}, {"fold": False, "full_names": True}):
        text = to_text(trace_table(trace, width=width, **options))  # type: ignore[arg-type]
        long = [line for line in text.splitlines() if len(line) > width]
        assert not long, f"{len(long[0])} > {width}: {long[0]!r}"


@pytest.mark.parametrize("example", EXAMPLE_MODELS, ids=lambda e: e[0])
def test_at_80_columns_no_row_is_cut_and_every_row_is_one_line(example: tuple[str, str | None, str]) -> None:
    trace = _example_trace(*example)
    lines = to_text(trace_table(trace, width=80, fold=False)).splitlines()
    rule = next(i for i, line in enumerate(lines) if line.startswith("─"))
    body = lines[rule + 1: rule + 1 + len(trace.rows)]
    assert len(body) == len(trace.rows)  # one line a row: nothing wrapped onto a second line
    assert not [line for line in body if line.endswith("…")], "a row was cut as a last resort"
    # each row still names its layer: the short name is the leaf of the qualified one
    for line, row in zip(body, trace.rows, strict=True):
        leaf = (row.name.rsplit(".", 1)[-1] if row.kind == "module" and row.name else row.name or row.op)
        assert leaf[:10] in line or "…" in line, (line, row.name)


def test_bert_and_gpt2_at_120_one_line_a_row_with_the_main_columns() -> None:
    for trace in (_bert(), model_trace("gpt2", costs=True)):
        assert trace.costs_counted  # MACs are counted by default, so their column is among the defaults
        text = to_text(trace_table(trace, width=120, fold=False))
        lines = text.splitlines()
        header = next(line for line in lines if line.startswith("Layer"))
        for column in ("Type", "Input shape", "Output shape", "Params", "MACs"):
            assert column in header
        rule = lines.index(next(line for line in lines if line.startswith("─")))
        assert all(len(line) <= 120 for line in lines)
        assert len(lines[rule + 1:]) >= len(trace.rows)
        assert sum(1 for line in lines[rule + 1: rule + 1 + len(trace.rows)] if line.endswith("…")) == 0


@pytest.mark.parametrize("width", [50, 80])
def test_fc_size_and_params_tables_fit_too(width: int) -> None:
    from convshape.render.table import fc_table, params_table

    for model, shape in ((load_file(EXAMPLES / "broken_fc.py").BrokenNet(), "64x784"),
                         (load_file(ASSETS / "failing.py").BothWrong(), "2x3x16x16")):
        report = convshape.fc_size(model, shape)
        text = to_text(fc_table(report, width=width))
        assert max(len(line) for line in text.splitlines()) <= width
        flat = " ".join(text.split())
        for check in report.layers:  # what moved under the row is still all there
            assert check.name in text and (check.fix is None or check.fix in flat)
    text = to_text(params_table(convshape.parameters(load_file(EXAMPLES / "mnist_net.py").M()), True, width))
    assert max(len(line) for line in text.splitlines()) <= width
    assert "Formula: out 20 x in 1 x kH 5 x kW 5 = 500" in " ".join(text.split())


def test_full_width_keeps_everything_and_narrow_drops_in_the_documented_order() -> None:
    trace = model_trace("mnist")
    full = to_text(trace_table(trace))
    assert "[64, 1, 28, 28]" in full and "mnist_net.py:19" in full  # pipes and files: the full table
    header = lambda w: next(x for x in to_text(trace_table(trace, width=w)).splitlines() if x.startswith("Layer"))  # noqa: E731
    assert "Source" in header(80) and "Input shape" in header(80)
    assert "Source" not in header(70) and "Input shape" in header(70)  # Source goes first
    assert "Input shape" not in header(50)
    assert "64x20x24x24" in to_text(trace_table(trace, width=80))  # compact shapes, as --input writes them


def test_columns_choose_and_are_never_dropped() -> None:
    trace = model_trace("mnist")
    text = to_text(trace_table(trace, columns=parse_columns("output,params%,kernel,source"), width=60))
    header = next(x for x in text.splitlines() if x.startswith("Layer"))
    assert header.split() == ["Layer", "Output", "shape", "Params", "%", "Kernel", "Source"]
    conv1 = next(x for x in text.splitlines() if x.strip().startswith("conv1"))
    assert "5x5" in conv1 and "0.1%" in conv1  # 520 / 431,080
    with pytest.raises(convshape.InputSpecError, match="unknown column"):
        parse_columns("name,colour")


def test_short_names_in_the_tree_and_full_names_on_request() -> None:
    trace = model_trace("resnet50")
    short = to_text(trace_table(trace, fold=False))
    full = to_text(trace_table(trace, fold=False, full_names=True))
    assert re.search(r"^ {6}downsample ", short, re.M) and "layer1.0.downsample" not in short
    assert re.search(r"^ {6}layer1\.0\.downsample ", full, re.M)


def test_costs_counted_shows_macs_columns_by_itself() -> None:
    trace = model_trace("mnist", costs=True)
    header = next(x for x in to_text(trace_table(trace)).splitlines() if x.startswith("Layer"))
    assert "MACs" in header and "Output mem" in header
    header = next(x for x in to_text(trace_table(model_trace("mnist"))).splitlines() if x.startswith("Layer"))
    assert "MACs" not in header


# ---------------------------------------------------------------------------------------------- folding
def test_gpt2_blocks_fold_with_torch_parameter_counts() -> None:
    module = load_file(EXAMPLES / "gpt2_small.py")
    model = module.GPT()
    trace = convshape.trace_model(model, "1x16:int64", device="meta", costs=True)
    (group,) = find_groups(trace)
    assert group.name == "blocks.0-11" and group.count == len(model.blocks) == 12
    assert group.params == sum(p.numel() for p in model.blocks.parameters())
    assert group.macs == sum(trace.rows[i].macs for i in group.members)  # type: ignore[misc]
    text = to_text(trace_table(trace))
    assert re.search(r"blocks\.0-11 +12 x Block +\[1, 16, 768\] +\[1, 16, 768\] +85,054,464", text)
    assert text.count("ln_1") == 1  # the children once
    expanded = to_text(trace_table(trace, fold=False))
    assert expanded.count("ln_1") == 12 and "12 x Block" not in expanded


def test_only_identical_blocks_fold() -> None:
    model = load_file(EXAMPLES / "resnet50.py").ResNet50()
    trace = convshape.trace_model(model, "1x3x64x64", device="meta")
    names = [g.name for g in find_groups(trace)]
    # block 0 of each stage downsamples (other shapes, other layers): it stays its own row
    assert names == ["layer1.1-2", "layer2.1-3", "layer3.1-5", "layer4.1-2"]
    for g in find_groups(trace):
        stage = getattr(model, g.name.split(".")[0])
        assert g.params == sum(p.numel() for b in list(stage)[1:] for p in b.parameters())

    class Widening(nn.Module):  # same class, different widths: must not fold
        def __init__(self) -> None:
            super().__init__()
            self.layers = nn.ModuleList(nn.Linear(8 * 2**i, 8 * 2 ** (i + 1)) for i in range(3))

        def forward(self, x):
            for layer in self.layers:
                x = layer(x)
            return x

    assert find_groups(convshape.trace_model(Widening(), "2x8")) == ()

    class Same(Widening):
        def __init__(self) -> None:
            nn.Module.__init__(self)
            self.layers = nn.ModuleList(nn.Linear(8, 8) for _ in range(3))

    (g,) = find_groups(convshape.trace_model(Same(), "2x8"))
    assert (g.name, g.count, g.params) == ("layers.0-2", 3, 3 * 72)

    class Shrinking(nn.Module):  # same layers and parameters, but each call sees a smaller image: no fold
        def __init__(self) -> None:
            super().__init__()
            self.convs = nn.ModuleList(nn.Conv2d(4, 4, 3) for _ in range(3))

        def forward(self, x):
            for conv in self.convs:
                x = conv(x)
            return x

    assert find_groups(convshape.trace_model(Shrinking(), "1x4x16x16")) == ()


def test_json_keeps_every_row_and_marks_groups() -> None:
    trace = model_trace("llama_tiny")
    data = trace.to_dict()
    assert len(data["rows"]) == len(trace.rows)
    (group,) = data["groups"]
    assert group["name"] == "layers.0-1" and group["count"] == 2
    inside = [r for r in data["rows"] if r["group"] == 0]
    assert inside[0]["index"] == group["first"] and inside[-1]["index"] == group["last"]
    assert [r["name"] for r in data["rows"] if r["index"] in group["members"]] == ["layers.0", "layers.1"]


# ---------------------------------------------------------------------------------------- formats, files
def test_output_files_take_the_format_of_their_extension(tmp_path: Path) -> None:
    model = f"{EXAMPLES / 'resnet_style.py'}:resnet_small"
    for ext, check in ((".json", lambda t: json.loads(t)["schema"] == "convshape.trace/1"),
                       (".md", lambda t: "| Layer | Type |" in t), (".csv", lambda t: t.startswith("index,kind,")),
                       (".html", lambda t: t.startswith("<!doctype html>") and "http" not in t.split("<body>")[1]),
                       (".mmd", lambda t: t.startswith("flowchart TD")), (".dot", lambda t: t.startswith("digraph")),
                       (".txt", lambda t: t.startswith("resnet_style.py:resnet_small  input"))):
        path = tmp_path / f"out{ext}"
        result = runner.invoke(app, ["trace", model, "-i", "2x3x32x32", "-d", "cpu", "-o", str(path)])
        assert result.exit_code == 0, result.output
        assert result.output == ""  # the file gets it all
        assert check(path.read_text()), ext
    result = runner.invoke(app, ["trace", model, "-i", "2x3x32x32", "-o", str(tmp_path / "x.xlsx")])
    assert result.exit_code == 2 and "cannot tell the format from the extension '.xlsx'" in result.output
    result = runner.invoke(app, ["params", model, "-f", "html"])
    assert result.exit_code == 2 and "html, mermaid and dot are for trace" in result.output
    result = runner.invoke(app, ["trace", model, "-i", "2x3x32x32", "-o", str(tmp_path / "no" / "dir.json")])
    assert result.exit_code == 2 and "cannot write the file" in result.output


def test_csv_has_every_row_with_torch_shapes() -> None:
    from convshape.render.csv import trace_csv

    from .conftest import torch_module_calls

    model = load_file(EXAMPLES / "resnet_style.py").resnet_small()
    import torch

    calls = torch_module_calls(model, torch.randn(2, 3, 32, 32))
    trace = convshape.trace_model(model, "2x3x32x32")
    rows = list(csv.DictReader(io.StringIO(trace_csv(trace))))
    modules = [r for r in rows if r["kind"] == "module"]
    assert len(rows) == len(trace.rows) and len(modules) == len(calls)
    for row, call in zip(modules, calls, strict=True):
        assert row["output_shapes"] == ";".join("x".join(map(str, s)) for s in call["out"])
    assert sum(1 for r in rows if r["group"] == "stages.0.0-1") > 1


def test_markdown_for_each_report() -> None:
    model = str(EXAMPLES / "broken_fc.py")
    result = runner.invoke(app, ["fc-size", model, "-i", "64x784", "-f", "markdown"])
    assert "| fc1 | ✗ wrong | 320 | 800 |" in result.output and "nn.Linear(800, 500)" in result.output
    result = runner.invoke(app, ["params", model, "-f", "csv"])
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert sum(int(r["numel"]) for r in rows) == sum(p.numel() for p in load_file(EXAMPLES / "broken_fc.py")
                                                     .BrokenNet().parameters())
    result = runner.invoke(app, ["trace", model, "-i", "64x784", "-f", "markdown"])
    assert result.exit_code == 1 and "> **✗ fc1 (Linear) expects in_features=320" in result.output


def test_graph_draws_residual_joins_and_folded_blocks() -> None:
    trace = convshape.trace_model(load_file(EXAMPLES / "resnet_style.py").resnet_small(), "2x3x32x32")
    graph = call_graph(trace, fold=False)
    joins = [n for n in graph.nodes if n.kind == "join"]
    assert joins  # every residual add
    for join in joins:
        into = [e for e in graph.edges if e[1] == join.id]
        assert len(into) == 2, into  # the block's path and the shortcut meet here
    mermaid = trace_mermaid(trace)
    assert 'stages.0.0-1: 2 x BasicBlock"]]' in mermaid  # one node for the folded pair
    assert '-->|"[2, 16, 32, 32]"|' in mermaid and mermaid.count("-->") == len(call_graph(trace).edges)
    dot = trace_dot(trace)
    assert "shape=box3d" in dot and 'label="[2, 64]"' in dot


def test_graph_edges_follow_torch_dataflow_on_mnist() -> None:
    graph = call_graph(model_trace("mnist"))
    labels = {n.id: n.label for n in graph.nodes}
    chain = [(labels[a], shape) for a, b, shape in graph.edges]
    assert chain[0] == ("input [64, 784]", "[64, 784]")
    assert ("fc1: Linear", "[64, 500]") in chain and chain[-1] == ("fc2: Linear", "[64, 10]")


# ----------------------------------------------------------------------------------------------- python
def test_trace_prints_as_its_table_and_renders_for_rich_and_jupyter() -> None:
    from rich.console import Console

    trace = model_trace("mnist")
    assert str(trace) == to_text(trace_table(trace))
    html = trace._repr_html_()
    assert html.startswith('<div class="convshape">') and "conv1" in html and "<script>" in html
    console = Console(width=70, record=True, color_system=None)
    console.print(trace)
    printed = console.export_text()
    assert "conv1" in printed and max(len(x) for x in printed.splitlines()) <= 70


def test_dir_lists_the_public_api() -> None:
    names = dir(convshape)
    for name in ("trace_model", "parameters", "fc_size", "Trace", "ConvshapeError", "TraceError"):
        assert name in names
    assert "TYPE_CHECKING" not in names


def test_html_is_ascii_and_ascii_flag_reaches_every_text_format() -> None:
    from convshape.render.html import trace_html

    try:
        convshape.trace_model(load_file(ASSETS / "failing.py").WrongChannels(), "2x1x28x28")
    except convshape.TraceError as e:
        page = trace_html(e.trace)  # type: ignore[arg-type]
    assert page.isascii() and "&#10007; conv2" in page  # ✗ as a character reference
    model = str(EXAMPLES / "broken_fc.py")
    result = runner.invoke(app, ["trace", model, "-i", "64x784", "-f", "markdown", "--ascii"])
    assert result.output.isascii() and "> **x fc1 (Linear)" in result.output
