"""The --input language and what it feeds forward: keywords, containers, plain values, fills, --train,
models pinned to a device. Shapes are checked against plain forward hooks on the same inputs."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import convshape
from convshape.cli import app
from convshape.errors import InputSpecError
from convshape.inputlang import parse_argument, parse_inputs
from convshape.inputs import make_input, materialize
from convshape.spec import Fill, InputSpec, Value

from .conftest import ASSETS, forward_hook_calls, load_file, unique_numel

runner = CliRunner()
MODELS = ASSETS / "inputs" / "models.py"
models = load_file(MODELS)
CPU = torch.device("cpu")


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def err_of(result) -> str:
    return result.stderr if result.stderr else result.output


def cli_rows(*argv: str) -> tuple[dict[str, Any], list[tuple[str, str, list[Any], list[Any]]]]:
    result = run("trace", *argv, "--format", "json")
    assert result.exit_code == 0, err_of(result)
    doc = json.loads(result.stdout)
    rows = [(r["name"], r["op"], r["input_shapes"], r["output_shapes"]) for r in doc["rows"] if r["kind"] == "module"]
    return doc, rows


def same_inputs(texts: list[str]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """What the CLI makes of ``texts``, made here independently for torch's own forward."""
    given = parse_inputs(texts)
    return materialize(given.args, CPU), materialize(given.kwargs, CPU)


# -- the language ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ("64x784", (None, InputSpec((64, 784)))),
    ("2x16:int64", (None, InputSpec((2, 16), "int64"))),
    ("attention_mask=1x128:int64", ("attention_mask", InputSpec((1, 128), "int64"))),
    ("mask=1x8:int64:ones", ("mask", InputSpec((1, 8), "int64", Fill("const", (1,))))),
    ("1x8:fill=0.5", (None, InputSpec((1, 8), "float32", Fill("const", (0.5,))))),
    ("1x8:bool:fill(False)", (None, InputSpec((1, 8), "bool", Fill("const", (False,))))),
    ("2x16:int64:randint(0,30522)", (None, InputSpec((2, 16), "int64", Fill("randint", (0, 30522))))),
    ("2x16:randint(100)", (None, InputSpec((2, 16), "int64", Fill("randint", (0, 100))))),  # ids: int64
    ("2x3:rand", (None, InputSpec((2, 3), "float32", Fill("rand")))),
    ("[3x320x320, 3x240x320]", (None, [InputSpec((3, 320, 320)), InputSpec((3, 240, 320))])),
    ("(1x2x16, 1x2x16)", (None, (InputSpec((1, 2, 16)), InputSpec((1, 2, 16))))),
    ("(1x2,)", (None, (InputSpec((1, 2)),))),
    ('{"image": 1x3x224x224, "mask": 1x224x224:bool}',
     (None, {"image": InputSpec((1, 3, 224, 224)), "mask": InputSpec((1, 224, 224), "bool")})),
    ("{image: [2x3, (4,)], 'k': None}", (None, {"image": [InputSpec((2, 3)), (InputSpec((4,)),)], "k": None})),
    ("5", (None, InputSpec((5,)))),  # a bare whole number is a 1-D shape
    ("scale=int(5)", ("scale", 5)),  # ... and int(5) the number
    ("p=0.5", ("p", 0.5)),
    ("mode='bilinear'", ("mode", Value("bilinear"))),
    ('mode="nearest"', ("mode", Value("nearest"))),
    ("x=None", ("x", None)),
    ("flag=True", ("flag", True)),
    ("size=literal((4, 4))", ("size", Value((4, 4)))),
    ("64,784", (None, InputSpec((64, 784)))),  # the old comma form
    ("Bx1xHxW", (None, InputSpec(("B", 1, "H", "W")))),  # names are symbolic sizes
    ("mask=BxS:bool", ("mask", InputSpec(("B", "S"), "bool"))),
])
def test_language_forms(text: str, expected: tuple[str | None, Any]) -> None:
    assert parse_argument(text) == expected


@pytest.mark.parametrize("text,start", [
    ("64x", "--input '64x': got an empty dimension; expected NxCxHxW[:DTYPE]"),
    ("a-1x3", "--input 'a-1x3': got 'a-1', neither a whole number nor a size name"),  # ax3 is symbolic now
    ("--5x3", "--input '--5x3': got '--5', not a whole number; expected NxCxHxW[:DTYPE]"),
    ("²x3", "--input '²x3': got '²', not a whole number in ASCII digits 0-9; expected NxCxHxW"),
    ("５x3", "--input '５x3': got '５', not a whole number in ASCII digits 0-9; expected NxCxHxW"),
    ("3x٣", "--input '3x٣': got '٣', not a whole number in ASCII digits 0-9"),
    ("-1x3", "--input '-1x3': dimension -1 must be a positive size"),
    ("bilinear", "--input 'bilinear': 'bilinear' is neither a shape nor a value (write a string in quotes"),
    ("[3x4", "--input '[3x4': expected ',' or ']' in [...], got the end of the text; expected SHAPE"),
    ("[3x4 3x4]", "--input '[3x4 3x4]': expected ',' or ']' in [...], got '3x4' at character 6"),
    ("{1x2: 3}", "--input '{1x2: 3}': a dict key must be a quoted string, a name or an integer"),
    ("{'a': 1x2, 'a': 3}", "--input \"{'a': 1x2, 'a': 3}\": a dict key appears twice"),
    ("1x2:int64:randn", "--input '1x2:int64:randn': randn makes floating-point values, not int64"),
    ("1x2:int64:fill(0.5)", "--input '1x2:int64:fill(0.5)': fill(0.5) is not a whole number, for int64"),
    ("1x2:randint(5, 2)", "--input '1x2:randint(5, 2)': randint(5, 2) is an empty range"),
    ("1x2:int64:float32", "--input '1x2:int64:float32': two dtypes (int64, float32)"),
    ("1x2:ones:zeros", "--input '1x2:ones:zeros': two fills (ones, zeros)"),
    ("int(2.5)", "--input 'int(2.5)': int(...) takes a whole number, got '2.5'; expected int(5)"),
    ("literal(__import__('os'))", "--input \"literal(__import__('os'))\": literal(__import__('os')) is not a Python"),
    ("'abc", "--input \"'abc\": the string starting at character 1 has no closing '"),
    ("x=", "--input 'x=': no value after x="),
    ("3x4 5", "--input '3x4 5': unexpected '5' at character 5 after a complete value"),
    ("[" * 100, "--input '[[[["),
    ("", "--input '': nothing to parse; expected NxCxHxW"),
])
def test_language_errors_say_what_was_expected(text: str, start: str) -> None:
    with pytest.raises(InputSpecError) as info:
        parse_argument(text)
    message = str(info.value)
    assert message.startswith(start), message
    assert "expected" in message and "\n" not in message and len(message) < 700


def test_errors_never_echo_a_huge_text() -> None:
    with pytest.raises(InputSpecError) as info:
        parse_argument("[" + "3x4, " * 5000 + "oops]")
    assert len(str(info.value)) < 700


def test_keyword_given_twice() -> None:
    with pytest.raises(InputSpecError, match="given twice"):
        parse_inputs(["mask=1x2", "mask=1x3"])


@pytest.mark.parametrize("spec,check", [
    (InputSpec((3, 4), "int64"), lambda t: bool((t == 1).all())),  # default: ones
    (InputSpec((3, 4), "bool"), lambda t: bool(t.all())),  # default: True
    (InputSpec((3, 4), "int64", Fill("const", (0,))), lambda t: bool((t == 0).all())),
    (InputSpec((3, 4), "float16", Fill("const", (0.5,))), lambda t: bool((t == 0.5).all())),
    (InputSpec((400,), "int64", Fill("randint", (5, 9))), lambda t: int(t.min()) == 5 and int(t.max()) == 8),
    (InputSpec((400,), "bool", Fill("randint", (0, 2))), lambda t: 0 < int(t.sum()) < 400),
    (InputSpec((400,), "float32", Fill("rand")), lambda t: float(t.min()) >= 0 and float(t.max()) < 1),
    (InputSpec((400,), "float64"), lambda t: float(t.min()) < 0 < float(t.max())),  # default: randn
])
def test_fills_make_what_they_say(spec: InputSpec, check: Any) -> None:
    torch.manual_seed(0)
    tensor = make_input(spec, CPU)
    assert tuple(tensor.shape) == spec.shape and str(tensor.dtype) == f"torch.{spec.dtype}"
    assert check(tensor)


# -- through the command line, against torch's own forward -------------------------------------------------

CLI_CASES: dict[str, tuple[str, list[str], list[str], tuple[int, ...]]] = {
    # name: (class, --input texts, options, the model's output shape as torch computes it)
    "list of images (detection)": ("Detector", ["[3x320x320, 3x240x320]"], [], (5, 16, 16)),
    "LSTM given (h0, c0)": ("StatefulLSTM", ["2x5x8", "(2x2x16, 2x2x16)"], [], (2, 4)),
    "keyword (h0, c0)": ("StatefulLSTM", ["2x5x8", "state=(2x2x16, 2x2x16)"], [], (2, 4)),
    "PackedSequence from real lengths": ("Packed", ["4x7:int64:randint(50)", "lengths=4:int64:fill(5)"], [],
                                         (4, 5, 12)),
    "dict input": ("DictInput", ['{"image": 2x3x8x8, "mask": 2x8x8:bool}'], [], (2, 2)),
    "string, int and bool arguments": ("Resize", ["1x3x4x4", "mode='bilinear'", "scale=int(3)", "align=False"],
                                       [], (1, 3, 12, 12)),
    "keyword-only float, optional mask": ("Masked", ["2x6:int64:randint(100)", "mask=2x6:bool:zeros",
                                                     "temperature=2.0"], [], (2, 6, 16)),
    "train mode": ("WithAux", ["2x3x8x8"], ["--train"], (2, 2)),
    "None for an optional mask": ("Masked", ["2x6:int64:randint(100)", "mask=None"], [], (2, 6, 16)),
    "a tuple of ints as a value": ("Sized", ["1x3x4x4", "size=literal((6, 10))"], [], (1, 2, 6, 10)),
}


@pytest.mark.parametrize("case", sorted(CLI_CASES))
@pytest.mark.parametrize("device", ["auto", "meta"])
def test_cli_forms_match_torch(case: str, device: str) -> None:
    name, texts, options, out_shape = CLI_CASES[case]
    if name == "Packed" and device == "meta":
        pytest.skip("pack_padded_sequence reads its lengths' values: not on meta")
    argv = [f"{MODELS}:{name}"] + [a for t in texts for a in ("--input", t)] + options + ["--device", device]
    doc, got = cli_rows(*argv)
    model = getattr(models, name)()
    torch.manual_seed(0)
    args, kwargs = same_inputs(texts)
    want = forward_hook_calls(model, args, kwargs, train="--train" in options)
    assert got == want
    assert doc["rows"][0]["output_shapes"][0] == list(out_shape)  # torch's own answer, spelled out
    assert doc["totals"]["params"] == unique_numel(model)


def test_train_mode_runs_the_training_branch_and_restores_state() -> None:
    model = models.WithAux()
    model.bn.running_mean.fill_(0.25)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.eval()
    trained = convshape.trace_model(model, "4x3x8x8", train=True)
    assert [r.name for r in trained.module_rows()] == ["", "conv", "bn", "fc", "aux"]
    assert trained.rows[0].output_shapes == ((4, 2), (4, 2))
    assert not any(m.training for m in model.modules())  # flags as they were
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "running stats changed"
    assert [r.name for r in convshape.trace_model(model, "4x3x8x8").module_rows()] == ["", "conv", "bn", "fc"]


def test_a_model_pinned_to_a_device_is_still_built_and_traced() -> None:
    for device in ("auto", "cpu"):
        result = run("trace", f"{MODELS}:Pinned", "-i", "2x6", "--device", device, "--format", "json")
        assert result.exit_code == 0, err_of(result)
        rows = json.loads(result.stdout)["rows"]
        assert rows[0]["output_shapes"] == [[2, 3]]
    params = run("params", f"{MODELS}:Pinned", "--format", "json")
    assert params.exit_code == 0, err_of(params)
    assert json.loads(params.stdout)["totals"]["params"] == unique_numel(models.Pinned()) == 21
    meta = run("params", f"{MODELS}:Pinned", "--device", "meta")
    assert meta.exit_code == 2 and "Cannot copy out of meta tensor" in err_of(meta)


@pytest.mark.parametrize("argv,start", [
    (["-i", "2x5x8", "-i", "stat=(2x2x16, 2x2x16)"],
     "error: --input stat=...: StatefulLSTM.forward has no argument named 'stat'; did you mean state? "
     "(signature: StatefulLSTM.forward(x, state))"),
    (["-i", "2x5x8"], "error: StatefulLSTM.forward(x, state) takes 2 input(s), got 1"),
    (["-i", "state=(2x2x16, 2x2x16)"], "error: StatefulLSTM.forward is missing required input(s): x; give them as "
     "--input x=SHAPE"),
    (["-i", "2x5x8", "-i", "x=2x5x8"], "error: --input x=...: x is already given by a positional --input"),
    (["-i", "2x5x8", "-i", "2x5x8", "-i", "2x5x8"], "error: StatefulLSTM.forward(x, state) takes 2 input(s), got 3"),
])
def test_signature_errors_come_before_the_model_is_built(argv: list[str], start: str, monkeypatch) -> None:
    from convshape import loader

    def no_build(*a: Any, **k: Any) -> None:
        raise AssertionError("the model was built before the inputs were checked")

    monkeypatch.setattr(loader, "_build", no_build)
    result = run("trace", f"{MODELS}:StatefulLSTM", *argv)
    assert result.exit_code == 2
    assert err_of(result).startswith(start), err_of(result)


@pytest.mark.parametrize("text", ["--5x3", "²x3", "５x3", "1x2:int64:randn", "[3x4", "bilinear"])
def test_bad_inputs_are_clean_errors_on_the_command_line(text: str) -> None:
    result = run("trace", str(ASSETS.parent.parent / "examples" / "mnist_net.py"), f"--input={text}")
    assert result.exit_code == 2
    assert err_of(result).startswith("error: --input "), err_of(result)
    assert "Traceback" not in result.output and err_of(result).count("\n") == 1


# -- the Python API ------------------------------------------------------------------------------------

def test_api_keywords_containers_and_values_match_torch() -> None:
    model = models.Masked()
    torch.manual_seed(0)
    mask = torch.zeros(2, 6, dtype=torch.bool)
    trace = convshape.trace_model(model, "2x6:int64:randint(100)", mask=mask, temperature=2.0)
    want = forward_hook_calls(model, (torch.ones(2, 6, dtype=torch.int64),), {"mask": mask, "temperature": 2.0})
    got = [(r.name, r.op, [list(s) for s in r.input_shapes], [list(s) for s in r.output_shapes])
           for r in trace.module_rows()]
    assert got == want
    assert [(i.shape, i.dtype, i.name) for i in trace.inputs] == [((2, 6), "int64", None), ((2, 6), "bool", "mask")]

    lstm = models.StatefulLSTM()
    h0 = torch.zeros(2, 3, 16)
    for state in ((h0, "2x3x16"), ["2x3x16", (2, 3, 16)], "(2x3x16, 2x3x16)"):
        trace = convshape.trace_model(lstm, (3, 5, 8), state)
        assert trace.rows[0].output_shapes == ((3, 4),)

    detector = models.Detector()
    trace = convshape.trace_model(detector, ["3x320x320", torch.zeros(3, 240, 320)])
    assert trace.rows[0].output_shapes == ((5, 16, 16), (5, 16, 16))
    assert convshape.trace_model(models.DictInput(), {"image": (2, 3, 8, 8), "mask": "2x8x8:bool"}).rows[0] \
        .output_shapes == ((2, 2),)


def test_api_forward_kwargs_named_like_an_option() -> None:
    class Odd(nn.Module):
        def forward(self, x: torch.Tensor, device: torch.Tensor, label: str = "") -> torch.Tensor:
            return x + device

    trace = convshape.trace_model(Odd(), "2x3", forward_kwargs={"device": "2x3", "label": convshape.Value("a")},
                                  device="cpu")
    assert trace.device == "cpu" and trace.rows[0].output_shapes == ((2, 3),)
    with pytest.raises(InputSpecError, match="given twice"):
        convshape.trace_model(Odd(), forward_kwargs={"x": "2x3"}, x="2x3")


def test_api_rejects_unknown_keywords_and_odd_values_briefly() -> None:
    with pytest.raises(InputSpecError, match=r"has no argument named 'maks'; did you mean mask\?"):
        convshape.trace_model(models.Masked(), "2x6:int64", maks="2x6:bool")
    with pytest.raises(InputSpecError) as info:
        convshape.trace_model(models.Masked(), object())
    assert str(info.value).startswith("input 1: a object is not an input") and len(str(info.value)) < 300
    with pytest.raises(InputSpecError, match="in Python pass it as a keyword argument: mask="):
        convshape.trace_model(models.Masked(), "2x6:int64", "mask=2x6:bool")


def test_api_named_tuples_and_packed_sequences_reach_forward_as_they_are() -> None:
    from collections import namedtuple

    from torch.nn.utils.rnn import pack_padded_sequence

    Pair = namedtuple("Pair", "x y")
    seen: list[Any] = []

    class Takes(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gru = nn.GRU(4, 6, batch_first=True)

        def forward(self, pair: Any, packed: Any) -> torch.Tensor:
            seen.extend([type(pair), type(packed)])
            out, _ = self.gru(packed)
            return pair.x + pair.y + out.data.sum()

    packed = pack_padded_sequence(torch.randn(3, 5, 4), torch.tensor([5, 3, 2]), batch_first=True)
    trace = convshape.trace_model(Takes(), Pair("2x2", (2, 2)), packed)
    assert seen == [Pair, type(packed)]
    assert trace.rows[0].output_shapes == ((2, 2),)
    assert [i.shape for i in trace.inputs] == [(2, 2), (2, 2), (10, 4)]  # a PackedSequence counts as its data
    gru = next(r for r in trace.rows if r.name == "gru")
    assert gru.output_shapes[0] == (10, 6)


def test_plain_values_and_train_mode_are_in_the_header_and_the_json() -> None:
    argv = [f"{MODELS}:Resize", "-i", "1x3x4x4", "-i", "mode='bilinear'", "-i", "scale=int(3)", "-i", "align=False"]
    table = run("trace", *argv)
    assert table.exit_code == 0, err_of(table)
    assert table.stdout.startswith("models.py:Resize  input [1, 3, 4, 4] float32, mode='bilinear', scale=3, "
                                   "align=False  on cpu\n")
    doc = json.loads(run("trace", *argv, "--format", "json").stdout)
    assert doc["values"] == [{"name": "mode", "value": "bilinear", "text": "'bilinear'"},
                             {"name": "scale", "value": 3, "text": "3"},
                             {"name": "align", "value": False, "text": "False"}]
    assert doc["train"] is False
    trained = run("trace", f"{MODELS}:WithAux", "-i", "2x3x8x8", "--train")
    assert trained.stdout.startswith("models.py:WithAux  input [2, 3, 8, 8] float32  on cpu  (train mode)\n")
    lstm = convshape.trace_model(models.StatefulLSTM(), "2x5x8", state=("2x2x16", torch.zeros(2, 2, 16)))
    assert [(i.name, i.shape) for i in lstm.inputs] == [(None, (2, 5, 8)), ("state[0]", (2, 2, 16)),
                                                        ("state[1]", (2, 2, 16))]
    assert lstm.values == ()


def test_the_signature_read_once_per_function_follows_a_changed_forward() -> None:
    """The arity check reads ``forward``'s signature once per function; whatever inspect.signature reads from a
    function (its code, defaults, ``__signature__``, ``__wrapped__``) changing is seen on the next trace."""
    import functools
    import inspect

    from convshape.arity import _parameters

    class Net(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 2

    net = Net()
    assert convshape.trace_model(net, "2x3").rows
    with pytest.raises(InputSpecError, match="takes 1 input"):
        convshape.trace_model(net, "2x3", "2x3")
    with pytest.raises(InputSpecError, match="no argument named 'y'"):
        convshape.trace_model(Net(), "2x3", y="2x3")

    def two(self: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return x * 2 if y is None else x + y

    Net.forward = two  # type: ignore[method-assign]  # a new function: a new entry
    assert [r.name for r in convshape.trace_model(net, "2x3", y="2x3").rows] == ["", "add"]
    two.__defaults__ = None  # y now required: what inspect.signature says changes, so must the check
    with pytest.raises(InputSpecError, match=r"forward\(x, y\) takes 2 input"):
        convshape.trace_model(net, "2x3")
    two.__signature__ = inspect.Signature([inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
                                           inspect.Parameter("x", inspect.Parameter.POSITIONAL_OR_KEYWORD)])
    with pytest.raises(InputSpecError, match="takes 1 input"):
        convshape.trace_model(net, "2x3", "2x3")

    def inner(self: nn.Module, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b

    @functools.wraps(inner)
    def wrapped(*args: Any, **kwargs: Any) -> torch.Tensor:
        return inner(*args, **kwargs)

    Net.forward = wrapped  # type: ignore[method-assign]
    for _ in range(2):  # the second time from the cache: the same answer as inspect's
        assert [p.name for p in _parameters(net.forward, False) or []] == \
            list(inspect.signature(net.forward).parameters) == ["a", "b"]
        assert [p.name for p in _parameters(Net.forward, True) or []] == ["a", "b"]
