"""The report of ``sim-analyzer``: its HTML structure, its text tables, and a real browser.

The browser test renders ``report.html`` with headless Chromium (Debian's ``chromium``;
installed here when missing if this process is root with apt-get, else skipped with the
reason) and requires a page with no console message and every image decoded.
"""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from recorderd import RecorderConfig, SimulationRecorder
from recorderd.session import layout as L
from tests.processes import sim_analyzer

ROOT = Path(__file__).resolve().parents[1]
LONG = "layer_with_a_name_long_enough_to_break_fixed_width_columns"


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return sim_analyzer(*args, timeout=300)


@pytest.fixture(scope="module")
def reported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3 s session of two nodes, analysed by the CLI (report.txt, report.html, plots/)."""
    out = tmp_path_factory.mktemp("report")
    config = RecorderConfig(
        output_dir=out,
        session_name="r",
        record_membrane=True,
        record_weights=True,
        membrane_subsample_rate=0.1,
        auto_flush=False,
    )
    rng = np.random.default_rng(4)
    with SimulationRecorder(config) as rec:
        for step in range(3000):
            rate = 0.02 + 0.02 * (step // 500 % 2)
            rec.record_spikes("pfc-0", "output", rng.random(60) < rate, step=step)
            rec.record_spikes("pfc-0", LONG, rng.random(40) < 0.03, step=step)
            rec.record_spikes("visual-0", "v1", rng.random(50) < 0.02, step=step)
            rec.record_membrane("pfc-0", "output", rng.normal(-60, 4, 60), step=step)
            if step % 1000 == 0:
                rec.record_weights("pfc-0", "w_in_out", rng.normal(size=(40, 60)), step=step)
            if step % 250 == 0:
                busy = step % 500 == 250
                rec.record_control_state(
                    "pfc-0",
                    "pfc",
                    "Processing" if busy else "Idle",
                    "task" if busy else None,
                    step=step,
                    metadata={"v_th_mv": -50.0},
                )
    res = run(out / "r")
    assert res.returncode == 0, res.stderr
    return out / "r"


class Page(HTMLParser):
    """Ids, links, images (with the caption of their figure) and tag balance of a page."""

    VOID = frozenset({"br", "img", "meta", "hr", "input", "link"})

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []
        self.images: list[str] = []
        self.captions: list[str] = []
        self.tags: list[str] = []
        self.stack: list[str] = []
        self._caption: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append(tag)
        if tag not in self.VOID:
            self.stack.append(tag)
        if a.get("id"):
            self.ids.add(str(a["id"]))
        if tag == "a" and a.get("href"):
            self.links.append(str(a["href"]))
        if tag == "img":
            self.images.append(str(a.get("src")))
        if tag == "figcaption":
            self._caption = []

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()
        if tag == "figcaption" and self._caption is not None:
            self.captions.append("".join(self._caption).strip())
            self._caption = None

    def handle_data(self, data: str) -> None:
        if self._caption is not None:
            self._caption.append(data)


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    assert not page.stack, f"unclosed tags {page.stack}"
    return page


def test_the_page_has_what_a_reader_needs_first(reported: Path) -> None:
    html = (reported / "report.html").read_text()
    page = parse(html)
    top = html[: html.index('<nav class="toc"')]
    # Session, duration, nodes, spikes, integrity badge, settings, version: before the contents.
    for text in (
        "Session r",
        "simulated time recorded",
        "wall-clock time",
        "spikes recorded",
        "badge ok",
        ">complete<",
        "gzip level 4 + shuffle",
        "spikes 1.0, membrane 0.1, seed 0",
        "flush interval",
        "recorderd version",
    ):
        assert text in top, text
    # A table of contents whose links all land.
    targets = [h[1:] for h in page.links if h.startswith("#")]
    assert {"node-pfc-0", "node-visual-0", f"layer-pfc-0-{LONG}", "integrity"} <= set(targets)
    assert set(targets) <= page.ids
    # Behaviour as tables (no <pre>), collapsible detail, one section per node.
    assert "pre" not in page.tags and page.tags.count("details") >= 5
    assert "Time per status" in html and "Processing" in html
    # Every figure in plots/ once, each with a caption that says what it shows.
    pngs = sorted(p.name for p in (reported / L.PLOTS_DIR).iterdir())
    assert len(page.images) == len(pngs) == html.count("data:image/png;base64,")
    assert len(page.captions) == len(page.images)
    assert all(len(c) > 60 for c in page.captions)
    assert any("window chosen so that single spikes stay visible" in c for c in page.captions)
    assert any("Dashed: the firing threshold, -50 mV" in c for c in page.captions)
    assert {"pfc-0_output_population.png", "visual-0_v1_population.png"} <= set(pngs)


def test_text_report_columns_stay_in_line(reported: Path) -> None:
    text = (reported / "report.txt").read_text()
    assert "Integrity:      complete" in text and "Recording settings" in text
    lines = text.splitlines()
    head = next(i for i, line in enumerate(lines) if "recorded/size" in line)
    header = lines[head]
    rows = [line for line in lines[head + 2 : head + 4] if line.strip()]
    assert any(LONG in r for r in rows) and any(r.lstrip().startswith("output") for r in rows)
    for col in ("spikes", "mean rate", "CV ISI"):
        end = header.index(col) + len(col)
        assert all(r[end - 1] != " " for r in rows), col


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("chromium is not installed, and this process cannot install it (root+apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "install", "-y", "-q", "chromium"], ["apt-get", "update", "-q"]):
        subprocess.run(cmd, env=env, capture_output=True, timeout=600, check=False)
        if shutil.which("chromium"):
            break
    if not shutil.which("chromium"):
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "chromium"],
            env=env,
            capture_output=True,
            timeout=600,
            check=False,
        )
    found = shutil.which("chromium")
    if not found:
        pytest.skip("chromium could not be installed with apt-get here")
    return found


#: Appended to a copy of the page: records which images the browser could not decode.
PROBE = """<script>
window.addEventListener('load', () => {
  const bad = [...document.images].filter(i => !(i.complete && i.naturalWidth > 0));
  document.body.setAttribute('data-probe', bad.length + ' of ' + document.images.length);
});
</script>"""


def test_the_page_in_a_real_browser(reported: Path, tmp_path: Path) -> None:
    chromium = _chromium()
    html = (reported / "report.html").read_text()
    probed = tmp_path / "probed.html"
    probed.write_text(html.replace("</body>", PROBE + "</body>"))
    profile = tempfile.mkdtemp(dir=tmp_path)
    done = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=10000",
            "--dump-dom",
            probed.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console
    probe = re.search(r'data-probe="(\d+) of (\d+)"', done.stdout)
    assert probe is not None, "the page did not finish loading"
    bad, total = int(probe[1]), int(probe[2])
    assert bad == 0 and total == html.count("data:image/png;base64,") > 0
    # And every embedded PNG decodes outside the browser too.
    for data in re.findall(r'src="data:image/png;base64,([^"]+)"', html):
        with Image.open(io.BytesIO(base64.b64decode(data))) as im:
            im.load()
            assert im.size[0] > 300 and im.size[1] > 200
