"""The HTML report in a real headless Chromium: what a person sees after the page's script ran
(the DOM Chromium dumps, and a screenshot), not only the HTML text we wrote."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

import convshape
from convshape.render.html import trace_html

from .conftest import ASSETS, EXAMPLES, load_file

BROWSER = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
if BROWSER is None and os.environ.get("CONVSHAPE_REQUIRE_BROWSER"):
    raise RuntimeError("no chromium on PATH; .ci/run installs it: apt-get install chromium")
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no Chromium (.ci/run installs Debian's chromium)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
         "--disable-extensions", "--allow-file-access-from-files"]


def _dump(page: Path, fragment: str = "") -> str:
    proc = subprocess.run([BROWSER, *FLAGS, "--virtual-time-budget=3000", "--dump-dom",  # type: ignore[list-item]
                           page.as_uri() + fragment], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "<tbody>" in proc.stdout, proc.stderr[-2000:]
    return proc.stdout


class _Rows(HTMLParser):
    """The table rows a person can see: (name cell text, hidden?) per row."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, object]] = []
        self._cell: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr" and "data-id" in a:
            self.rows.append({"hidden": "hidden" in a, "classes": (a.get("class") or "").split(), "name": "",
                              "toggle": "", "depth": int(a.get("data-depth") or 0)})
        elif tag == "td" and self.rows and "name" in (a.get("class") or "") and not self.rows[-1]["name"]:
            self._cell = "name"
        elif tag == "span" and "tog" in (a.get("class") or "") and self._cell == "name":
            self._cell = "toggle"

    def handle_endtag(self, tag: str) -> None:
        if tag == "span" and self._cell == "toggle":
            self._cell = "name"
        elif tag == "td":
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell and self.rows:
            self.rows[-1][self._cell] = str(self.rows[-1][self._cell]) + data


def _rows(dom: str) -> list[dict[str, object]]:
    parser = _Rows()
    parser.feed(dom)
    return parser.rows


@pytest.fixture(scope="module")
def resnet_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = load_file(EXAMPLES / "resnet_style.py").resnet_small()
    page = tmp_path_factory.mktemp("html") / "resnet.html"
    page.write_text(trace_html(convshape.trace_model(model, "2x3x32x32", costs=True)))
    return page


def test_the_tree_opens_two_levels_deep_and_folds_repeated_blocks(resnet_page: Path) -> None:
    rows = _rows(_dump(resnet_page))
    visible = [r for r in rows if not r["hidden"]]
    assert [r["name"] for r in visible if r["depth"] == 1] == ["stem", "stages", "pool", "flatten", "fc"]
    assert all(int(r["depth"]) <= 2 for r in visible)  # deeper rows start collapsed
    assert {r["toggle"] for r in visible if r["name"] in ("stem", "stages")} == {"▾"}
    assert {r["toggle"] for r in visible if r["depth"] == 2 and r["name"] != "0"} <= {"▸", ""}
    group = next(r for r in rows if "group" in r["classes"])  # type: ignore[operator]
    assert group["name"] == "0-1"  # stages.0.0 and stages.0.1 in one row
    # every row carries a bar for its share of the parameters and of the MACs
    dom = _dump(resnet_page)
    assert dom.count('class="bar params"') == len(rows) == dom.count('class="bar macs"')


def test_search_shows_the_matching_rows_and_their_ancestors(resnet_page: Path) -> None:
    rows = _rows(_dump(resnet_page, "#q=linear"))
    visible = [r["name"] for r in rows if not r["hidden"]]
    assert visible == ["ResNet", "fc"]  # the one Linear, and the path to it
    rows = _rows(_dump(resnet_page, "#q=downsample"))
    visible = [r for r in rows if not r["hidden"]]
    # the qualified names match: each downsample, and the conv and norm inside it
    assert [r["name"] for r in visible if "match" in r["classes"]] == ["downsample", "0", "1"] * 2  # type: ignore
    assert [r["name"] for r in visible if r["depth"] == 2] == ["1", "2"]  # stages.1 and stages.2, opened


def test_the_failure_and_its_fix_are_on_the_page(tmp_path: Path) -> None:
    try:
        convshape.trace_model(load_file(ASSETS / "failing.py").WrongChannels(), "2x1x28x28")
        raise AssertionError("the model should fail")
    except convshape.TraceError as e:
        page = tmp_path / "failed.html"
        page.write_text(trace_html(e.trace))  # type: ignore[arg-type]
    dom = _dump(page)
    alert = re.search(r'<div class="failure" role="alert">(.*?)</div></div>', dom, re.S)
    assert alert, dom[:2000]
    text = re.sub(r"<[^>]+>", "", alert.group(1))
    assert "✗ conv2 (Conv2d) expects 10 input channels, received 20" in text
    assert "fix: nn.Conv2d(20, 50, kernel_size=5)" in text and "at failing.py:15" in text
    failed = [r for r in _rows(dom) if "failed" in r["classes"]]  # type: ignore[operator]
    assert [r["name"] for r in failed] == ["✗ conv2"] and not failed[0]["hidden"]


def test_a_screenshot_is_not_blank(resnet_page: Path, tmp_path: Path) -> None:
    shot = tmp_path / "shot.png"
    subprocess.run([BROWSER, *FLAGS, f"--screenshot={shot}", "--window-size=1200,700",  # type: ignore[list-item]
                    resnet_page.as_uri()], capture_output=True, timeout=120, check=True)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000  # a rendered table, not an empty page
