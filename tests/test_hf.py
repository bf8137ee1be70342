"""Hugging Face models by class, from tiny configs: every module row against plain forward hooks, totals against
numel. Needs the `hf` extra (transformers); .ci/run installs it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from convshape.cli import app
from convshape.inputlang import parse_inputs
from convshape.inputs import materialize

from .conftest import forward_hook_calls, unique_numel

transformers = pytest.importorskip("transformers")
import torch  # noqa: E402

runner = CliRunner()
CPU = torch.device("cpu")

TINY_BERT = {"num_hidden_layers": 2, "hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 37,
             "vocab_size": 100, "max_position_embeddings": 64}
TINY_GPT2 = {"n_layer": 2, "n_embd": 32, "n_head": 2, "vocab_size": 100, "n_positions": 64}
TINY_LLAMA = {"num_hidden_layers": 2, "hidden_size": 32, "num_attention_heads": 4, "num_key_value_heads": 2,
              "intermediate_size": 64, "vocab_size": 100, "max_position_embeddings": 64}
TINY_T5 = {"d_model": 32, "d_ff": 64, "d_kv": 8, "num_layers": 2, "num_decoder_layers": 1, "num_heads": 4,
           "vocab_size": 100}

CASES: dict[str, tuple[str, dict[str, Any], list[str], Any]] = {
    # name: (MODEL, --arg values, --input texts, how torch builds the same model)
    "bert with attention_mask": (
        "transformers:BertModel", TINY_BERT,
        ["input_ids=2x8:int64:randint(100)", "attention_mask=2x8:int64:ones"],
        lambda: transformers.BertModel(transformers.BertConfig(**TINY_BERT))),
    "gpt2": (
        "transformers:GPT2Model", TINY_GPT2, ["input_ids=2x8:randint(100)"],
        lambda: transformers.GPT2Model(transformers.GPT2Config(**TINY_GPT2))),
    "llama by AutoModelForCausalLM": (
        "transformers:AutoModelForCausalLM", {"model_type": "llama", **TINY_LLAMA},
        ["input_ids=1x12:randint(100)", "attention_mask=1x12:int64:ones"],
        lambda: transformers.LlamaForCausalLM(transformers.LlamaConfig(**TINY_LLAMA))),
    "t5 encoder-decoder": (
        "transformers:T5Model", TINY_T5,
        ["input_ids=2x7:randint(100)", "decoder_input_ids=2x5:randint(100)"],
        lambda: transformers.T5Model(transformers.T5Config(**TINY_T5))),
}


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def err_of(result) -> str:
    return result.stderr if result.stderr else result.output


def _argv(model: str, args: dict[str, Any], texts: list[str]) -> list[str]:
    return [model] + [a for k, v in args.items() for a in ("--arg", f"{k}={v}")] + \
        [a for t in texts for a in ("--input", t)]


@pytest.mark.parametrize("case", sorted(CASES))
def test_module_rows_match_plain_hooks_and_totals_match_numel(case: str) -> None:
    model_ref, args, texts, build = CASES[case]
    result = run("trace", *_argv(model_ref, args, texts), "--format", "json")
    assert result.exit_code == 0, err_of(result)
    doc = json.loads(result.stdout)
    got = [(r["name"], r["op"], r["input_shapes"], r["output_shapes"]) for r in doc["rows"] if r["kind"] == "module"]
    model = build()
    given = parse_inputs(texts)
    want = forward_hook_calls(model, materialize(given.args, CPU), materialize(given.kwargs, CPU))
    assert len(got) > 10 and got == want
    assert doc["totals"]["params"] == unique_numel(model)
    assert doc["totals"]["trainable"] == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert [i.get("name") for i in doc["inputs"]] == [t.split("=")[0] for t in texts]  # keyword inputs named


@pytest.mark.parametrize("case", ["gpt2", "t5 encoder-decoder"])
def test_meta_gives_the_same_rows(case: str) -> None:
    # (an attention_mask is read for its values by transformers' masking code: meta cannot run that)
    model_ref, args, texts, _ = CASES[case]
    rows = {}
    for device in ("cpu", "meta"):
        result = run("trace", *_argv(model_ref, args, texts), "--device", device, "--format", "json")
        assert result.exit_code == 0, err_of(result)
        rows[device] = [(r["name"], r["output_shapes"]) for r in json.loads(result.stdout)["rows"]]
    assert rows["cpu"] == rows["meta"]


def test_config_file_and_label(tmp_path: Path) -> None:
    transformers.BertConfig(**TINY_BERT).to_json_file(str(tmp_path / "config.json"))
    result = run("trace", "transformers:BertModel", "--config", tmp_path / "config.json",
                 "--arg", "num_hidden_layers=1", "-i", "input_ids=1x8:randint(100)", "--format", "json")
    assert result.exit_code == 0, err_of(result)
    doc = json.loads(result.stdout)
    assert doc["model"] == "transformers:BertModel(config=config.json)"
    built = transformers.BertModel(transformers.BertConfig(**{**TINY_BERT, "num_hidden_layers": 1}))
    assert doc["totals"]["params"] == unique_numel(built)  # the file's sizes, with --arg on top
    assert {r["name"] for r in doc["rows"]} >= {"encoder.layer.0"} and "encoder.layer.1" not in {
        r["name"] for r in doc["rows"]}
    params = run("params", "transformers:AutoModel", "--config", tmp_path, "--format", "json")  # a directory too
    assert params.exit_code == 0, err_of(params)
    assert json.loads(params.stdout)["totals"]["params"] == unique_numel(
        transformers.BertModel(transformers.BertConfig(**TINY_BERT)))


def test_model_type_in_the_header() -> None:
    result = run("trace", *_argv("transformers:AutoModel", {"model_type": "llama", **TINY_LLAMA},
                                 ["input_ids=1x4:randint(100)"]))
    assert result.exit_code == 0, err_of(result)
    assert result.stdout.startswith("transformers:AutoModel(model_type='llama')  input input_ids=[1, 4] int64")


@pytest.mark.parametrize("argv,start", [
    (["transformers:BertModel", "-a", "num_hiden_layers=2"],
     "error: transformers:BertModel: BertConfig has no field 'num_hiden_layers'; did you mean num_hidden_layers?"),
    (["transformers:AutoModel"], "error: transformers:AutoModel needs the architecture: --arg model_type=llama"),
    (["transformers:AutoModel", "-a", "model_type=lama"],
     "error: transformers:AutoModel(model_type='lama'): unknown model_type 'lama'; did you mean llama"),
    (["transformers:BertModel", "--config", "no/such/config.json"],
     "error: --config no/such/config.json: file not found"),
    (["transformers:BertModel", "-a", "vocab_size=100", "-i", "input_idz=1x8:int64"],
     "error: --input input_idz=...: BertModel.forward has no argument named 'input_idz'; did you mean input_ids"),
    (["transformers:AutoModel", "-a", "model_type=bert", "-i", "input_idz=1x8:int64"],  # AutoModel's choice: known
     "error: --input input_idz=...: BertModel.forward has no argument named 'input_idz'; did you mean input_ids"),
])
def test_hf_errors(argv: list[str], start: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from convshape import loader

    def no_build(*a: Any, **k: Any) -> None:
        raise AssertionError("a model was built before its config and inputs were checked")

    monkeypatch.setattr(loader, "_build", no_build)
    result = run("trace", *argv)
    assert result.exit_code == 2
    assert err_of(result).startswith(start), err_of(result)


def test_config_of_another_architecture(tmp_path: Path) -> None:
    transformers.GPT2Config(**TINY_GPT2).to_json_file(str(tmp_path / "config.json"))
    result = run("params", "transformers:BertModel", "--config", tmp_path / "config.json")
    assert result.exit_code == 2
    assert err_of(result).startswith("error: --config ") and "model_type 'gpt2'" in err_of(result)


def test_factory_name_in_the_label(tmp_path: Path) -> None:
    (tmp_path / "zoo.py").write_text(
        "from torch import nn\n\n"
        "def create_model(model_name: str = 'small', width: int = 4) -> nn.Module:\n"
        "    return nn.Sequential(nn.Linear(3, width), nn.ReLU())\n")
    result = run("trace", f"{tmp_path / 'zoo.py'}:create_model", "--arg", "model_name=convnext_tiny", "-i", "2x3")
    assert result.exit_code == 0, err_of(result)
    assert result.stdout.startswith("zoo.py:create_model(model_name='convnext_tiny')  input [2, 3] float32")
