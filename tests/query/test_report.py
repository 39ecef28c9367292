"""The HTML report and ``show`` figures: well-formed, self-contained, every image decodable."""

from __future__ import annotations

import base64
import io
import os
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import update

from xaiq.db.errors import NotFoundError
from xaiq.db.models import Job
from xaiq.report import build_report, show_sample

VOID = {"meta", "img", "br", "hr", "link", "input", "wbr"}


@pytest.fixture
def engine(tmp_path):
    """Reports read through the same queries on both backends (tested in test_stats); the
    pictures are backend-independent, so they are drawn from a SQLite store only."""
    from sqlalchemy import create_engine

    from xaiq.db.models import Base

    eng = create_engine(f"sqlite:///{tmp_path / 'r.sqlite'}")
    Base.metadata.create_all(eng)
    yield eng
    eng.dispose()


class _Structure(HTMLParser):
    """Checks that every non-void tag is closed in order; collects <img> sources."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.images: list[str] = []
        self.errors: list[str] = []
        self.text: list[str] = []
        self.glue = False

    def handle_starttag(self, tag, attrs):
        # <wbr>: a place a header may break ("success_<wbr>rate"), not a break in the text
        self.glue = tag == "wbr"
        if tag == "img":
            self.images.append(dict(attrs).get("src", ""))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> with open {self.stack[-3:]}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        if self.glue and self.text:
            self.text[-1] += data
        else:
            self.text.append(data)
        self.glue = False


def _parse(path) -> _Structure:
    parser = _Structure()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    assert not parser.errors, parser.errors[:3]
    assert parser.stack == [], parser.stack
    return parser


def _decode(src: str) -> Image.Image:
    prefix = "data:image/png;base64,"
    assert src.startswith(prefix), src[:40]
    img = Image.open(io.BytesIO(base64.b64decode(src[len(prefix) :], validate=True)))
    img.load()
    assert img.format == "PNG" and img.width > 50 and img.height > 50
    return img


RESULT_SECTIONS = (
    "Verdict: which explanation to trust",
    "Summary",
    "Glossary",
    "Statistics per pair and configuration",
    "Disagreement metrics (higher = the maps disagree more)",
    "Agreement metrics (higher = the maps agree more)",
    "Distributions per configuration",
    "Disagreement, correctness and confidence",
    "Per class",
    "Examples ranked by Feature disagreement",
    "Most disagreeing",
    "Least disagreeing",
    "Spec (JSON)",
)


def test_disagreement_report_reads_like_a_results_section(store, tmp_path):
    out = build_report(store.engine, store.disagreement_job, tmp_path / "r.html")
    page = _parse(out)
    text = " ".join(page.text)
    positions = [text.find(section) for section in RESULT_SECTIONS]
    assert all(p >= 0 for p in positions), [
        s for s, p in zip(RESULT_SECTIONS, positions, strict=True) if p < 0
    ]
    assert positions == sorted(positions)  # summary first, the spec folded at the end
    raw = out.read_text()
    assert "<details><summary>Spec (JSON)</summary>" in raw
    # per configuration (two) distributions and correctness/confidence; 3 most + 3 least
    assert len(page.images) == 2 + 2 + 3 + 3
    for src in page.images:
        _decode(src)
    assert "http://" not in raw and "https://" not in raw and "<link" not in raw
    # counts are integers; configurations are never pooled (the fixture has two)
    assert '<td class="nw">12</td>' in raw and "12.000" not in raw  # 12 samples per pair and config
    assert "n_segments 16" in text and "n_segments 49" in text
    assert "Integrated Gradients vs Saliency" in text and "integrated_gradients vs" not in text


def test_two_jobs_open_with_their_comparison_then_each_job(store, tmp_path):
    jobs = [store.disagreement_job, store.second_job]
    out = build_report(store.engine, jobs, tmp_path / "two.html", metric="euclidean")
    page = _parse(out)
    text = " ".join(page.text)
    # the jobs are over different models: each is named by its model
    assert f"job {jobs[0]} (digits-cnn-weak) vs job {jobs[1]} (digits-cnn)" in text
    assert f"Job {jobs[0]}: disagreement" in text and f"Job {jobs[1]}: disagreement" in text
    assert text.index("every metric, paired by sample") < text.index(f"Job {jobs[0]}:")
    assert text.count("Examples ranked by Euclidean distance") == 2
    assert text.count("Glossary") == 1  # once for the page, not per job
    # the rows align across jobs: both jobs have a value in the same row
    raw = out.read_text()
    row = raw[raw.index('<h2 class="compare">') :].split("<tr>")[2]
    assert row.count("(n=") == 2, row
    for src in page.images:
        _decode(src)


def test_attack_report_shows_summary_and_before_after_examples(store, tmp_path):
    out = build_report(store.engine, store.attack_job, tmp_path / "a.html")
    page = _parse(out)
    text = " ".join(page.text)
    assert "success_rate" in text and "Before / after examples" in text
    assert "central: 2, central (out of domain): 1, rise-least: 2" in text
    assert "success 95% CI" in text and "[0.300, 0.903]" in text  # Wilson, 4 of 6 in domain
    raw = out.read_text()  # the examples' headings are their figures' alt text
    assert "sample 1: success (out of domain)" in raw  # never shown as a plain success
    assert "sample 1: success," not in raw
    # outcome figure + reliability diagram (no per-strategy rows here, so no success
    # curves) + 4 successes + 1 failure
    assert "Calibration of the model" in text
    assert len(page.images) == 1 + 1 + 4 + 1
    for src in page.images:
        _decode(src)


def test_report_escapes_text_from_the_store(store, tmp_path):
    with store.engine.begin() as conn:
        conn.execute(
            update(Job)
            .where(Job.id == store.attack_job)
            .values(spec={"note": "<script>alert(1)</script>"})
        )
    out = build_report(store.engine, store.attack_job, tmp_path / "e.html")
    raw = out.read_text()
    assert "<script>" not in raw and "&lt;script&gt;" in raw
    _parse(out)


def test_unknown_job_raises_not_found(store, tmp_path):
    with pytest.raises(NotFoundError, match="unknown job id 777"):
        build_report(store.engine, 777, tmp_path / "x.html")
    assert not (tmp_path / "x.html").exists()


def _png(path) -> np.ndarray:
    img = Image.open(path)
    assert img.format == "PNG"
    return np.asarray(img.convert("RGB"))


def test_show_draws_original_and_every_method(store, tmp_path):
    out = show_sample(store.engine, store.disagreement_job, 2, tmp_path / "s.png")
    arr = _png(out)
    assert arr.shape[1] > 2.5 * arr.shape[0]  # four panels side by side
    assert arr.std() > 10  # not a blank canvas


def test_show_attack_draws_four_panels(store, tmp_path):
    out = show_sample(store.engine, store.attack_job, 1, tmp_path / "a.png")
    arr = _png(out)
    assert arr.shape[1] > 2.5 * arr.shape[0] and arr.std() > 10


def test_show_without_dataset_draws_the_maps_alone(store, tmp_path):
    with store.engine.begin() as conn:
        conn.execute(
            update(Job).where(Job.id == store.second_job).values(dataset=str(tmp_path / "gone"))
        )
    out = show_sample(store.engine, store.second_job, 0, tmp_path / "m.png")
    assert _png(out).std() > 10


def test_show_unknown_sample_raises_not_found(store, tmp_path):
    with pytest.raises(NotFoundError, match="no attribution maps for sample 500"):
        show_sample(store.engine, store.disagreement_job, 500, tmp_path / "n.png")
    with pytest.raises(NotFoundError, match="no attack result for sample 99"):
        show_sample(store.engine, store.attack_job, 99, tmp_path / "n.png")


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _chromium_run(browser, tmp_path, *args):
    cmd = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        *args,
    ]
    return subprocess.run(cmd, check=False, capture_output=True, timeout=120, text=True)


@pytest.mark.slow
def test_report_renders_with_its_plots_in_headless_chromium(store, tmp_path):
    browser = _chromium()
    if browser is None:
        if os.environ.get("XAIQ_REQUIRE_SERVICES") == "1":
            pytest.fail("chromium is required (XAIQ_REQUIRE_SERVICES=1) but not installed")
        pytest.skip("chromium not installed")
    page = build_report(store.engine, store.disagreement_job, tmp_path / "r.html")
    # the DOM as the browser built it: every section heading is there, every image decoded
    probe = (
        "<script>document.title = JSON.stringify({"
        "h: Array.from(document.querySelectorAll('h2, h3, summary')).map(e => e.textContent),"
        "img: Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)})"
        "</script>"
    )
    probed = tmp_path / "probe.html"
    probed.write_text(page.read_text().replace("</body>", probe + "</body>"))
    dom = _chromium_run(browser, tmp_path, "--dump-dom", probed.resolve().as_uri()).stdout
    title = dom[dom.index("<title>") + 7 : dom.index("</title>")]
    import html as html_lib
    import json as json_lib

    rendered = json_lib.loads(html_lib.unescape(title))
    for section in RESULT_SECTIONS:
        assert any(section in h for h in rendered["h"]), section
    assert len(rendered["img"]) == 10 and all(rendered["img"]), rendered["img"]
    shot = tmp_path / "shot.png"
    _chromium_run(
        browser,
        tmp_path,
        f"--screenshot={shot}",
        "--window-size=1300,6000",
        page.resolve().as_uri(),
    )
    assert shot.is_file(), "chromium wrote no screenshot"
    arr = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    r, b = arr[..., 0], arr[..., 2]
    # the plots are drawn: saturated pixels (boxes, diverging maps), not just text on white
    saturated = (np.max(arr, axis=-1) - np.min(arr, axis=-1)) > 80
    assert saturated.mean() > 0.02, saturated.mean()
    assert ((b > 150) & (r < 120)).sum() > 1000  # blue: boxes and negative attributions
    assert ((r > 150) & (b < 120)).sum() > 1000  # red/orange: boxes and positive attributions


@pytest.mark.slow
def test_the_verdict_leads_and_every_figure_is_shown_at_least_at_its_readable_size(store, tmp_path):
    """In the browser: the verdict table comes first, and no figure is displayed narrower
    than 300 px per panel column (``data-panels``) at the page's width, and the verdict
    table fits the page without scrolling sideways."""
    browser = _chromium()
    if browser is None:
        if os.environ.get("XAIQ_REQUIRE_SERVICES") == "1":
            pytest.fail("chromium is required (XAIQ_REQUIRE_SERVICES=1) but not installed")
        pytest.skip("chromium not installed")
    from xaiq.report.format import PANEL_PX

    page = build_report(store.engine, store.disagreement_job, tmp_path / "v.html")
    probe = (
        "<script>document.title = JSON.stringify({"
        "first: document.querySelector('h2').textContent,"
        "verdict: Array.from(document.querySelectorAll('table.verdict tbody tr')).length,"
        "fit: Array.from(document.querySelectorAll('table.verdict'))"
        ".map(t => [t.getBoundingClientRect().width, t.parentElement.clientWidth]),"
        "img: Array.from(document.images).map(i => [i.alt, i.getBoundingClientRect().width,"
        " Number(i.dataset.panels), i.naturalWidth])})"
        "</script>"
    )
    probed = tmp_path / "probe.html"
    probed.write_text(page.read_text().replace("</body>", probe + "</body>"))
    dom = _chromium_run(
        browser, tmp_path, "--window-size=1400,3000", "--dump-dom", probed.resolve().as_uri()
    ).stdout
    import html as html_lib
    import json as json_lib

    got = json_lib.loads(html_lib.unescape(dom[dom.index("<title>") + 7 : dom.index("</title>")]))
    assert got["first"] == "Verdict: which explanation to trust"
    assert got["verdict"] == 3  # one row per method of the job
    # the verdict table fits the page: its cells break before an interval, never inside one
    for width, room in got["fit"]:
        assert width <= room, (width, room)
    assert len(got["img"]) == 10
    for alt, shown, panels, natural in got["img"]:
        assert panels >= 1 and natural > 0, alt
        assert shown >= panels * PANEL_PX - 1, (alt, shown, panels, natural)


def test_an_html_table_rounds_each_column_by_one_rule():
    import re

    from xaiq.report.format import table as html_table

    rows = [
        {"metric": "a", "p": 0.0009938, "mean": 0.51234},
        {"metric": "b", "p": 0.01234, "mean": 0.25},
    ]
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", html_table(rows, ["metric", "p", "mean"]))
    # p: 4 significant digits for both (not 0.0009938 beside 0.012); mean: 3 decimals
    assert cells == ["a", "0.0009938", "0.512", "b", "0.01234", "0.250"]


def test_a_verdict_cell_may_break_before_its_interval_but_never_inside_it():
    import re

    from xaiq.report.format import table as html_table
    from xaiq.report.html import STYLE
    from xaiq.report.verdict_section import keep_intervals_whole

    rows = [
        {"method": "IG", "deletion": "0.058 [0.049, 0.067]", "sanity": "fail: 0.85 [0.84, 0.86]"}
    ]
    page = keep_intervals_whole(html_table(rows, ["method", "deletion", "sanity"]))
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", page)
    assert cells == ["IG", "0.058 [0.049,&nbsp;0.067]", "fail: 0.85 [0.84,&nbsp;0.86]"]
    # and the verdict table's cells may wrap (at those spaces), so it narrows to the page
    assert "table.verdict td { white-space: normal" in STYLE
