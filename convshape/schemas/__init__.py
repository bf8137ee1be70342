"""JSON Schema (draft 2020-12) files of the JSON contract, one per document ``schema`` tag."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

FILES = {"convshape.trace/1": "trace.json", "convshape.params/1": "params.json",
         "convshape.fc-size/1": "fc-size.json", "convshape.layer/1": "layer.json",
         "convshape.sizes/1": "sizes.json"}


def schema_for(tag: str) -> dict[str, Any]:
    """The JSON Schema of the document tagged ``tag`` (``"convshape.trace/1"``)."""
    return json.loads(resources.files(__name__).joinpath(FILES[tag]).read_text(encoding="utf-8"))
