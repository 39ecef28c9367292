"""``xaiq serve`` routes through Starlette's TestClient over the populated read-side store:
every page renders, the gallery paginates and sorts in SQL, figures decode, CSV cells are
escaped, a token is asked for off loopback, and no page shows the store's password."""

from __future__ import annotations

import csv
import io
import warnings

import pytest
from PIL import Image

warnings.filterwarnings("ignore", message=".*httpx2.*")
from starlette.testclient import TestClient  # noqa: E402

from xaiq.cli.serve_cmd import is_loopback  # noqa: E402
from xaiq.serve.app import TOKEN_HEADER, create_app  # noqa: E402
from xaiq.serve.tables import csv_cell, to_csv  # noqa: E402


@pytest.fixture
def client(store):
    return TestClient(create_app(store.engine))


def test_every_page_renders(store, client) -> None:
    d, a = store.disagreement_job, store.attack_job
    for url in (
        "/",
        f"/jobs/{d}",
        f"/jobs/{a}",
        f"/jobs/{d}/samples",
        f"/jobs/{a}/samples",
        f"/jobs/{d}/samples/3",
        f"/jobs/{a}/samples/2",
        f"/compare?a={d}&b={store.second_job}",
    ):
        r = client.get(url)
        assert r.status_code == 200, (url, r.text[:300])
        assert "Traceback" not in r.text
    jobs = client.get("/").text
    assert all(f'href="/jobs/{j}"' in jobs for j in store.jobs)


def test_api_jobs_reports_progress_and_filters(store, client) -> None:
    from sqlalchemy.orm import Session

    from xaiq.db.models import Job, JobTag

    with Session(store.engine) as session:
        session.get(Job, store.disagreement_job).name = "=weak<i>cnn"
        session.add_all([JobTag(job_id=store.disagreement_job, tag=t) for t in ("b", "a")])
        session.commit()
    rows = client.get("/api/jobs").json()["jobs"]
    named = next(r for r in rows if r["job"] == store.disagreement_job)
    assert named["name"] == "=weak<i>cnn" and named["tags"] == ["a", "b"]
    page = client.get("/").text
    assert "=weak&lt;i&gt;cnn" in page and "<i>" not in page and "a, b" in page
    assert {r["job"] for r in rows} == set(store.jobs)
    assert all(r["status"] == "succeeded" for r in rows)
    only = client.get("/api/jobs?kind=attack").json()["jobs"]
    assert [r["job"] for r in only] == [store.attack_job]
    assert client.get("/api/jobs?status=nope").status_code == 400


def test_gallery_pages_in_sql_and_sorts_by_a_stored_metric(store, client) -> None:
    d = store.disagreement_job
    first = client.get(f"/jobs/{d}/samples.csv?per_page=12&page=1").text
    rows = list(csv.DictReader(io.StringIO(first)))
    assert [int(r["sample_index"]) for r in rows] == list(range(12))
    pair = "integrated_gradients|saliency"
    url = f"/jobs/{d}/samples.csv?metric=euclidean&pair={pair}&config=grid|16|0.05&order=asc"
    got = [
        (int(r["sample_index"]), float(r["value"]))
        for r in csv.DictReader(io.StringIO(client.get(url).text))
    ]
    expected = sorted(
        (x["sample_index"], x["euclidean"])
        for x in store.disagreements
        if x["job_id"] == d
        and (x["method_a"], x["method_b"]) == tuple(pair.split("|"))
        and x["n_segments"] == 16
        and x["euclidean"] is not None
    )
    expected.sort(key=lambda t: (t[1], t[0]))
    assert got == [(i, pytest.approx(v)) for i, v in expected]
    means: dict[int, list[float]] = {}
    for x in store.disagreements:
        if x["job_id"] == d and x["n_segments"] == 49 and x["rank_correlation"] is not None:
            means.setdefault(x["sample_index"], []).append(x["rank_correlation"])
    url = f"/jobs/{d}/samples.csv?metric=rank_correlation&pair=all&config=grid|49|0.1"
    page = list(csv.DictReader(io.StringIO(client.get(url + "&per_page=96").text)))
    # descending, ties by descending sample index (one index walked backwards serves it)
    want_means = sorted(((sum(v) / len(v), i) for i, v in means.items()), reverse=True)
    assert [int(r["sample_index"]) for r in page] == [i for _, i in want_means]
    assert [float(r["value"]) for r in page] == pytest.approx([m for m, _ in want_means])
    # a sample filter takes the joined path: the same order, only the correct ones
    right = list(csv.DictReader(io.StringIO(client.get(url + "&correct=yes").text)))
    ok = {i for (j, i), smp in store.samples.items() if j == d and smp["correct"]}
    assert [int(r["sample_index"]) for r in right] == [i for _, i in want_means if i in ok]
    wrong = client.get(f"/jobs/{d}/samples.csv?correct=no").text
    want = sorted(i for (j, i), s in store.samples.items() if j == d and not s["correct"])
    assert [int(r["sample_index"]) for r in csv.DictReader(io.StringIO(wrong))] == want
    assert client.get(f"/jobs/{d}/samples?metric=bogus").status_code == 400


def _gallery_urls(store) -> list[str]:
    """A gallery URL for every sort and filter option of the store's jobs."""
    d, a = store.disagreement_job, store.attack_job
    urls = []
    for config in ("grid|16|0.05", "grid|49|0.1"):
        for pair in ("all", "integrated_gradients|saliency", "saliency|grad_cam"):
            for metric in ("feature_disagreement", "rank_correlation"):
                for order in ("desc", "asc"):
                    base = f"/jobs/{d}/samples.csv?metric={metric}&pair={pair}&config={config}"
                    urls.append(f"{base}&order={order}&per_page=12&page=2")
                    for extra in ("", "&label=1", "&pred=2", "&correct=no", "&label=1&correct=yes"):
                        urls.append(f"{base}&order={order}{extra}&per_page=12")
    for job in (d, a):
        for metric in ("", "prob_pred", "prob_target"):
            for extra in ("", "&label=2", "&correct=yes", "&order=asc"):
                urls.append(f"/jobs/{job}/samples.csv?metric={metric}{extra}&per_page=96")
    for metric in ("l0", "l2", "linf", "prob_after", "iterations", "forward_passes"):
        for extra in ("", "&order=asc", "&label=1", "&correct=no"):
            urls.append(f"/jobs/{a}/samples.csv?metric={metric}{extra}&per_page=96")
    return urls


def test_a_gallery_sorted_by_disagreement_opens_at_the_most_informative_configuration(
    store, client
) -> None:
    # the job holds grid|16|0.05 (top-k of one superpixel: every value 0 or 1) and grid|49|0.1
    d = store.disagreement_job
    base = f"/jobs/{d}/samples.csv?metric=feature_disagreement&pair=all&per_page=96"
    default = client.get(base).text
    assert default == client.get(base + "&config=grid|49|0.1").text
    assert default != client.get(base + "&config=grid|16|0.05").text
    html = client.get(f"/jobs/{d}/samples?metric=feature_disagreement").text
    assert '<option value="grid|49|0.1" selected' in html


def test_sort_keys_give_the_pages_the_result_rows_give(store, client) -> None:
    """Once a job's sort keys are built (as finishing it builds them) every gallery option
    shows the same samples, values and totals as computed from the result rows."""
    import re

    from sqlalchemy import update

    from xaiq.analysis import sortkeys
    from xaiq.db.models import Job, utcnow

    with store.engine.begin() as conn:
        conn.execute(update(Job).values(finished_at=utcnow()))
    urls = _gallery_urls(store)

    def pages() -> tuple[list[str], list[list[str]]]:
        out, totals = [], []
        for url in urls:
            r = client.get(url)
            assert r.status_code == 200, (url, r.text[:300])
            out.append(r.text)
            shown = client.get(url.replace("samples.csv", "samples")).text
            totals.append(re.findall(r"(\d+) samples match", shown))
        return out, totals

    before, totals = pages()
    assert any(len(p.splitlines()) > 2 for p in before)
    with store.engine.connect() as conn:
        assert not any(sortkeys.valid(conn, j) for j in store.jobs)
    for job in store.jobs:
        assert sortkeys.build_sort_keys(store.engine, job)
    with store.engine.connect() as conn:
        assert all(sortkeys.valid(conn, j) for j in store.jobs)
    after, totals_after = pages()
    for url, b, k in zip(urls, before, after, strict=True):
        assert _rows(k) == _rows(b), url
    assert totals_after == totals


def _rows(text: str) -> list[tuple]:
    return [
        tuple(round(float(v), 9) if _is_float(v) else v for v in r.values())
        for r in csv.DictReader(io.StringIO(text))
    ]


def _is_float(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True


def test_figures_decode_and_are_cached(store, client) -> None:
    d = store.disagreement_job
    url = f"/jobs/{d}/samples/1/maps.png"
    r = client.get(url)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    img = Image.open(io.BytesIO(r.content))
    img.load()
    assert img.size[0] > 100
    again = client.get(url)
    assert again.content == r.content
    cache = client.app.state.pages.cache
    assert cache.hits >= 1
    svg = client.get(f"/jobs/{d}/samples/1/saliency.svg")
    assert svg.status_code == 200 and b"<svg" in svg.content
    attack = client.get(f"/jobs/{store.attack_job}/samples/0/maps.png")
    Image.open(io.BytesIO(attack.content)).load()
    assert client.get(f"/jobs/{d}/samples/1/nomethod.png").status_code == 404


def test_tables_download_as_csv(store, client) -> None:
    d = store.disagreement_job
    r = client.get(f"/jobs/{d}/table/stats.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert rows and "mean" in rows[0]
    a = client.get(f"/jobs/{store.attack_job}/table/attack-by-job.csv").text
    (row,) = csv.DictReader(io.StringIO(a))
    assert int(row["n"]) == len(store.attacks)
    # a success counts as plain only when its final image stayed inside the input domain
    plain = sum(bool(x["success"]) and x.get("out_of_domain") == 0.0 for x in store.attacks)
    assert int(row["successes"]) == plain
    assert int(row["successes_out_of_domain"]) == sum(x["success"] for x in store.attacks) - plain
    both = client.get(f"/compare.csv?a={d}&b={store.second_job}").text
    assert f"job {d}" in both.splitlines()[0]


def test_a_page_rounds_its_tables_as_the_report_does(store, client) -> None:
    """The job page's statistics table prints each mean with the report's rule: 3 decimals
    (4 significant digits only for a column holding a value below 1e-3 or from 1e4 on)."""
    import re

    d = store.disagreement_job
    rows = list(csv.DictReader(io.StringIO(client.get(f"/jobs/{d}/table/stats.csv").text)))
    page = client.get(f"/jobs/{d}").text
    table = page[page.index("/table/stats.csv") :]
    table = table[: table.index("</table>")]
    head = re.findall(r"<th>(.*?)</th>", table)
    shown = [re.findall(r"<td>(.*?)</td>", r) for r in re.findall(r"<tr><td>.*?</tr>", table)]
    assert len(shown) == len(rows) and "mean" in head
    means = [float(r["mean"]) for r in rows if r["mean"]]
    small = any(v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e4) for v in means)
    for row, cells in zip(rows, shown, strict=True):
        cell = cells[head.index("mean")]
        if not row["mean"]:
            assert cell == "NULL"
        elif small and float(row["mean"]) != 0:
            assert cell == f"{float(row['mean']):.4g}"
        else:  # 0.3271 printed 0.327, as the report prints it
            assert cell == f"{float(row['mean']):.3f}"


def test_the_protocol_card_shows_one_row_per_setting(store, client) -> None:
    """Nested settings print as dotted fields with plain values (as in the report and
    ``export --what protocol``), never as a Python dict."""
    from sqlalchemy import update

    from xaiq.db.models import Job

    card = {
        "seeds": {"job": 0},
        "attack": {"preset": "default", "clamp": True, "domain": [0.0, 1.0]},
        "runtime": [{"device": "cpu", "versions": {"torch": "2.14.1"}}],
    }
    with store.engine.begin() as conn:
        conn.execute(update(Job).where(Job.id == store.attack_job).values(protocol=card))
    page = client.get(f"/jobs/{store.attack_job}").text
    card_html = page[page.index("<h2>Protocol card</h2>") :]
    for field, value in (
        ("seeds.job", "0"),
        ("attack.clamp", "True"),
        ("attack.domain", "0.0, 1.0"),
        ("runtime[0].versions.torch", "2.14.1"),
    ):
        assert f"<tr><th>{field}</th><td>{value}</td></tr>" in card_html
    assert "{" not in card_html[: card_html.index("</table>")]


def test_csv_escapes_formula_cells() -> None:
    assert csv_cell("=1+1") == "'=1+1"
    assert csv_cell("-2") == "'-2" and csv_cell("@x") == "'@x" and csv_cell("+3") == "'+3"
    assert csv_cell("ok") == "ok" and csv_cell(None) == ""
    text = to_csv([{"a": "=HYPERLINK(1)"}], ["a"])
    assert text.splitlines()[1] == "'=HYPERLINK(1)"


def test_a_token_is_required_when_given(store) -> None:
    client = TestClient(create_app(store.engine, token="s3cret-token-0123456789"))
    assert client.get("/").status_code == 401
    assert client.get("/api/jobs").status_code == 401
    assert client.get("/", headers={TOKEN_HEADER: "wrong"}).status_code == 401
    assert client.get("/", headers={TOKEN_HEADER: "s3cret-token-0123456789"}).status_code == 200
    r = client.get("/?token=s3cret-token-0123456789", follow_redirects=False)
    assert r.status_code == 303 and "token" not in r.headers["location"]
    assert client.get("/api/jobs").status_code == 200  # the cookie now carries it


def test_loopback_hosts() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")


def test_no_page_shows_the_password(store) -> None:
    from sqlalchemy import create_engine

    if store.engine.dialect.name == "postgresql":  # trust auth: any password is accepted
        engine = create_engine(store.engine.url.set(password="hunter2pass"))
    else:  # SQLite ignores the query argument (with a warning) but the URL carries it
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            engine = create_engine(f"{store.engine.url}?password=hunter2pass")
    client = TestClient(create_app(engine))
    d = store.disagreement_job
    for page in ("/", f"/jobs/{d}", f"/jobs/{d}/samples", "/compare"):
        text = client.get(page).text
        assert "hunter2pass" not in text
    assert "***" in client.get("/").text


def test_the_cli_imports_the_web_app_only_when_it_serves() -> None:
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys; from xaiq.cli.main import main; rc = main(['serve', '--help']);"
        " print(rc, sorted(m for m in ('starlette', 'uvicorn', 'torch', 'xaiq.serve.app')"
        " if m in sys.modules))"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "0 []"
    assert "--host" in out.stdout and "XAIQ_SERVE_TOKEN" in out.stdout


def test_serve_off_loopback_wants_the_token_on_every_request(tmp_path) -> None:
    """`xaiq serve --host 0.0.0.0` in a subprocess: it prints the token URL (the token from
    XAIQ_SERVE_TOKEN), refuses requests without it, and serves them with it."""
    import os
    import socket
    import subprocess
    import sys
    import time
    import urllib.error
    import urllib.request
    from pathlib import Path

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = "tok-" + "x7" * 10
    root = Path(__file__).resolve().parents[2]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("XAIQ_")},
        "PYTHONPATH": str(root),
        "XAIQ_HOME": str(tmp_path / "home"),
        "XAIQ_SERVE_TOKEN": token,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "xaiq.cli.main", "serve", "--host", "0.0.0.0", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/api/jobs"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(url, timeout=5)  # noqa: S310 - our own server
                pytest.fail("answered without the token")
            except urllib.error.HTTPError as exc:
                assert exc.code == 401
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("xaiq serve did not start")
        req = urllib.request.Request(url, headers={TOKEN_HEADER: token})
        with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310
            assert r.status == 200 and r.read().startswith(b'{"jobs":')
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert f"?token={token}" in err and "from XAIQ_SERVE_TOKEN" in err


def test_a_short_token_is_refused_in_one_line(monkeypatch, capsys) -> None:
    from xaiq.cli.main import main

    monkeypatch.setenv("XAIQ_SERVE_TOKEN", "short")
    assert main(["serve", "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: XAIQ_SERVE_TOKEN must be at least 16 characters, got 5"]
