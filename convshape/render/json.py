"""JSON output: the versioned contract documented in the README."""

from __future__ import annotations

import json
from typing import Any, Protocol


class _Report(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


def to_json(report: _Report) -> str:
    return json.dumps(report.to_dict(), indent=2)
