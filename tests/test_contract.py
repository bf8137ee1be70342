"""The JSON contract: every JSON document convshape writes validates against the schema files shipped
in the package, and the README lists every field those schemas name."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
import pytest
from typer.testing import CliRunner

from convshape.cli import app
from convshape.schemas import FILES, schema_for

from .conftest import ASSETS, EXAMPLES, ROOT

runner = CliRunner()

COMMANDS = [
    ["trace", str(EXAMPLES / "mnist_net.py"), "-i", "64x784", "-d", "cpu"],
    ["trace", str(EXAMPLES / "mnist_net.py"), "-i", "64x784", "-d", "cpu", "--costs", "--explain"],
    ["trace", f"{EXAMPLES / 'resnet_style.py'}:resnet_small", "-i", "2x3x32x32", "--costs"],
    ["trace", f"{EXAMPLES / 'llama.py'}:llama_tiny", "-i", "1x16:int64", "-d", "meta", "--costs"],
    ["trace", str(EXAMPLES / "lstm_tagger.py"), "-i", "2x16:int64"],
    ["trace", str(EXAMPLES / "broken_fc.py"), "-i", "64x784"],  # a failure: error filled in
    ["trace", f"{ASSETS / 'failing.py'}:WrongChannels", "-i", "2x1x28x28"],
    ["trace", f"{ASSETS / 'zoo.py'}:TiedLM", "-i", "2x8:int64"],
    ["params", str(EXAMPLES / "mnist_net.py")],
    ["params", f"{ASSETS / 'zoo.py'}:TiedLM"],
    ["params", f"{ASSETS / 'zoo.py'}:FrozenBackbone"],
    ["fc-size", str(EXAMPLES / "broken_fc.py"), "-i", "64x784"],
    ["fc-size", f"{ASSETS / 'failing.py'}:BothWrong", "-i", "2x3x16x16"],
    ["fc-size", f"{ASSETS / 'failing.py'}:WrongChannels", "-i", "2x1x28x28"],
    ["trace", str(EXAMPLES / "mnist_images.py"), "-i", "Bx1xHxW", "--explain"],  # symbolic sizes
    ["trace", f"{EXAMPLES / 'llama.py'}:llama_tiny", "-i", "1xS:int64"],
    ["trace", f"{ASSETS / 'symbolic.py'}:ItemSized", "-i", "2xN"],  # symbols stop at .item()
    ["fc-size", str(EXAMPLES / "mnist_images.py"), "-i", "1x1xHxW"],
    ["sizes", str(EXAMPLES / "mnist_images.py"), "-i", "1x1xHxW", "--limit", "40", "--try", "28,32"],
    ["layer", "nn.Conv2d(3, 10, 2, 2)", "-i", "1x3x32x32"],
    ["layer", "nn.Conv2d(3, 10, 2, 2)", "-i", "1x4x32x32"],  # a failure
]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join([*a[:1], a[1].rsplit("/", 1)[-1], *a[2:]]))
def test_every_json_output_validates_against_its_shipped_schema(args: list[str]) -> None:
    result = runner.invoke(app, [*args, "-f", "json"])
    assert result.exit_code in (0, 1), result.output
    doc = json.loads(result.stdout)
    schema = schema_for(doc["schema"])
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(doc, schema, cls=jsonschema.Draft202012Validator)


def test_a_schema_rejects_what_breaks_the_contract() -> None:
    result = runner.invoke(app, ["trace", str(EXAMPLES / "mnist_net.py"), "-i", "64x784", "-f", "json"])
    doc = json.loads(result.stdout)
    schema = schema_for("convshape.trace/1")
    del doc["rows"][0]["output_shapes"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema)
    doc = json.loads(result.stdout)
    doc["rows"][0]["undocumented"] = 1  # a new field must be added to the schema (and the README) first
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema)


def _fields(schema: dict[str, Any], node: Any = None, seen: set[str] | None = None) -> set[str]:
    """Every property name a schema defines, nested ones included."""
    seen = set() if seen is None else seen
    node = schema if node is None else node
    if isinstance(node, dict):
        for key, value in node.get("properties", {}).items():
            seen.add(key)
            _fields(schema, value, seen)
        for key, value in node.items():
            if key != "properties":
                _fields(schema, value, seen)
    elif isinstance(node, list):
        for value in node:
            _fields(schema, value, seen)
    return seen


def test_the_readme_contract_names_every_field() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## JSON output", 1)[1].split("\n## ", 1)[0]
    spans = re.findall(r"`([^`]+)`", section) + re.findall(r'"([a-z_]+)"', section)
    quoted = {word for span in spans for word in re.findall(r"[a-z_]+", span)}
    for tag in FILES:
        missing = sorted(_fields(schema_for(tag)) - quoted)
        assert not missing, f"{tag}: README's JSON contract does not name {missing}"


def test_schemas_ship_as_package_data() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    assert 'convshape = ["schemas/*.json"]' in text
    for name in FILES.values():
        assert (ROOT / "convshape" / "schemas" / name).is_file()
