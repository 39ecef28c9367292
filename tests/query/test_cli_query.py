"""``xaiq stats|export|show|report`` through ``xaiq.cli.main.main``: outputs, one-line errors,
and the demo summary; on a store created by the real migrations."""

from __future__ import annotations

import csv
import io
import json

import pytest

from xaiq.cli.main import main


@pytest.fixture
def engine(tmp_path, monkeypatch):
    from xaiq.db.session import dispose_engines, get_engine

    url = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    monkeypatch.setenv("XAIQ_DB_URL", url)
    eng = get_engine(url, migrate=True)  # the Alembic schema, as users get it
    yield eng
    dispose_engines()


def _out(capsys, *args: str) -> str:
    code = main(list(args))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


def test_stats_disagreement_json_has_one_row_per_pair_and_metric(store, capsys):
    rows = json.loads(
        _out(
            capsys,
            "stats",
            "disagreement",
            "--job",
            str(store.disagreement_job),
            "--metric",
            "euclidean,feature_disagreement",
            "--format",
            "json",
        )
    )
    # 3 pairs x 2 superpixel configurations (the pooling rule) x 2 metrics
    assert len(rows) == 3 * 2 * 2
    assert {r["metric"] for r in rows} == {"euclidean", "feature_disagreement"}
    want = [
        d["euclidean"]
        for d in store.disagreements
        if d["job_id"] == store.disagreement_job
        and d["method_a"] == "saliency"
        and d["n_segments"] == 49
    ]
    (sal,) = [
        r
        for r in rows
        if r["pair"] == "saliency vs grad_cam"
        and r["metric"] == "euclidean"
        and r["n_segments"] == 49
    ]
    assert sal["n"] + sal["nulls"] == len(want)
    assert sal["nulls"] == sum(v is None for v in want)


def test_stats_disagreement_csv_groups_by_several_keys(store, capsys):
    text = _out(
        capsys, "stats", "disagreement", "-g", "model,correct", "-M", "euclidean", "-f", "csv"
    )
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0])[:5] == ["model", "correct", "n_segments", "k_frac", "metric"]
    assert {(r["model"], r["correct"]) for r in rows} == {
        ("digits-cnn", "False"),
        ("digits-cnn", "True"),
        ("digits-cnn-weak", "False"),
        ("digits-cnn-weak", "True"),
    }


def test_stats_attack_prints_the_success_summary(store, capsys):
    assert "attacks" in _out(capsys, "stats", "attack", "--job", str(store.attack_job))
    (row,) = json.loads(_out(capsys, "stats", "attack", "-f", "json", "-g", "job"))
    assert row["job"] == store.attack_job
    assert (row["n"], row["successes"], row["successes_out_of_domain"]) == (6, 4, 1)
    assert row["won_by"] == "central: 2, central (out of domain): 1, rise-least: 2"


def test_export_show_and_report_write_their_files(store, tmp_path, capsys):
    job = str(store.disagreement_job)
    _out(
        capsys,
        "export",
        job,
        "--what",
        "samples",
        "--format",
        "json",
        "--out",
        str(tmp_path / "s.jsonl"),
    )
    lines = (tmp_path / "s.jsonl").read_text().splitlines()
    assert len(lines) == 12 and json.loads(lines[0])["sample_index"] == 0
    _out(capsys, "show", job, "3", "--out", str(tmp_path / "f.png"))
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    _out(capsys, "report", str(store.attack_job), "--out", str(tmp_path / "r.html"))
    assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["stats", "disagreement", "--job", "4242"], "unknown job id 4242"),
        (["stats", "disagreement", "--group-by", "colour"], "unknown group-by key 'colour'"),
        (["stats", "disagreement", "--metric", "accuracy"], "unknown metric 'accuracy'"),
        (["stats", "attack", "--group-by", "pair"], "unknown group-by key 'pair'"),
        (["export", "1", "--format", "xlsx", "--out", "x"], "unknown export format 'xlsx'"),
        (["export", "1", "--what", "pixels", "--out", "x"], "unknown export table 'pixels'"),
        (["show", "4242", "0"], "unknown job id 4242"),
        (["report", "4242"], "unknown job id 4242"),
    ],
)
def test_bad_arguments_give_one_line_errors(store, capsys, args, message):
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err
    assert len(err.splitlines()) == 1


def test_demo_summary_prints_both_tables_and_the_report_path(store, capsys, tmp_path):
    from xaiq.cli.query import print_demo_summary

    print_demo_summary(
        store.engine, [store.disagreement_job, store.attack_job], tmp_path / "report.html"
    )
    captured = capsys.readouterr()
    assert "disagreement per pair" in captured.out and "attacks" in captured.out
    from xaiq.analysis.queries import disagreement_stats

    keys = ["pair", "n_segments", "k_frac"]  # the fixture's jobs have two configurations
    first = disagreement_stats(store.engine, [store.disagreement_job], keys)[0]
    # the cell "mean [low, high]" may fold at its spaces in a narrow terminal
    assert f"{first['mean']:.3f}" in captured.out
    assert f"[{first['ci_low']:.3f}," in captured.out and f"{first['ci_high']:.3f}]" in captured.out
    assert "[0.300, 0.903]" in captured.out  # the Wilson interval of 4 in-domain successes of 6
    assert "0.667" in captured.out  # attack success rate, 4 of 6 inside the domain
    assert f"report: {(tmp_path / 'report.html').resolve()}" in captured.out


def test_finish_demo_writes_one_report_per_job_and_prints_their_paths(store, capsys, tmp_path):
    from xaiq.cli.query import finish_demo

    jobs = [store.disagreement_job, store.attack_job]
    paths = finish_demo(store.engine, jobs, tmp_path / "out")
    assert [p.name for p in paths] == [f"report-job{j}.html" for j in jobs]
    assert all(p.read_text().startswith("<!DOCTYPE html>") for p in paths)
    out = capsys.readouterr().out
    assert all(f"report: {p.resolve()}" in out for p in paths)
