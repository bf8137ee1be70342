"""Re-run every ```-block in README.md that starts with `$ convshape ...` and paste the real output.

    python scripts/readme_examples.py          # rewrite README.md
    python scripts/readme_examples.py --check  # exit 1 if any block is stale (the tests run this)
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"```\n\$ (convshape [^\n]+)\n(.*?)```", re.S)


def render(command: str) -> str:
    args = shlex.split(command)[1:]
    proc = subprocess.run([sys.executable, "-m", "convshape", *args], cwd=ROOT, capture_output=True, text=True)
    return proc.stdout + proc.stderr


def refreshed(text: str) -> str:
    return BLOCK.sub(lambda m: f"```\n$ {m.group(1)}\n{render(m.group(1))}```", text)


def main() -> int:
    path = ROOT / "README.md"
    text = path.read_text()
    new = refreshed(text)
    if "--check" in sys.argv:
        if new != text:
            print("README.md examples are stale: run python scripts/readme_examples.py", file=sys.stderr)
            return 1
        return 0
    path.write_text(new)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
