"""The verdict is computed from statistics rows alone, and says what its numbers say."""

from __future__ import annotations

import pytest

from xaiq.analysis.verdict import model_verdicts, split_name
from xaiq.db.errors import QueryError
from xaiq.report.rank_config import choose_config, parse_rank_at
from xaiq.xai.figures import method_title

METHODS = ["integrated_gradients", "saliency", "grad_cam"]


def _faith(method: str, dele: float, ins: float, **extra: float) -> dict:
    return {
        "method": method,
        "unit": "pixels",
        "deletion_mean": dele,
        "deletion_low": dele - 0.02,
        "deletion_high": dele + 0.02,
        "insertion_mean": ins,
        "insertion_low": ins - 0.02,
        "insertion_high": ins + 0.02,
        **extra,
    }


def _layer(method: str, order: int, abs_: float, signed: float) -> dict:
    return {
        "method": method,
        "layer_order": order,
        "spearman_abs_mean": abs_,
        "spearman_abs_low": abs_ - 0.03,
        "spearman_abs_high": abs_ + 0.03,
        "spearman_signed_mean": signed,
        "spearman_signed_low": signed - 0.03,
        "spearman_signed_high": signed + 0.03,
    }


def _sanity(method: str, abs_: float, signed: float) -> dict:
    verdict = "pass" if abs_ + 0.03 < 0.5 else "fail"
    return {
        "method": method,
        "spearman_abs_mean": abs_,
        "spearman_abs_high": abs_ + 0.03,
        "spearman_signed_mean": signed,
        "threshold": 0.5,
        "verdict": verdict,
    }


def test_the_paragraph_names_the_most_faithful_map_and_why_it_fails_the_sanity_check():
    faith = [
        _faith("integrated_gradients", 0.05, 0.99),
        _faith("saliency", 0.30, 0.95),
        _faith("grad_cam", 0.40, 0.60),
    ]
    layers = [
        _layer("integrated_gradients", 1, 0.95, 0.2),
        _layer("integrated_gradients", 4, 0.85, -0.005),
    ]
    layers += [_layer("saliency", 4, 0.12, 0.12), _layer("grad_cam", 4, 0.9, 0.9)]
    sanity = [
        _sanity("integrated_gradients", 0.85, -0.005),
        _sanity("saliency", 0.12, 0.12),
        _sanity("grad_cam", 0.9, 0.9),
    ]
    pairs = [
        {"pair": "integrated_gradients vs saliency", "mean": 0.3},
        {"pair": "integrated_gradients vs grad_cam", "mean": 0.6},
        {"pair": "saliency vs grad_cam", "mean": 0.5},
    ]
    (mv,) = model_verdicts(
        ["digits-cnn"],
        METHODS,
        faith=faith,
        sanity_layers=layers,
        sanity=sanity,
        pairs=pairs,
        config="n_segments 49 · k_frac 0.25",
        title=method_title,
    )
    ig, sal, cam = mv.methods
    assert ig.score == pytest.approx(0.94) and ig.faithful
    # the last layer's interval is read, not the first's
    assert ig.sanity_abs == pytest.approx((0.85, 0.82, 0.88))
    assert (ig.sanity_abs_verdict, ig.sanity_signed_verdict) == ("fail", "pass")
    assert ig.disagreement == {"saliency": 0.3, "grad_cam": 0.6}
    assert (ig.supported, sal.supported, cam.supported) == (False, True, False)
    text = mv.paragraph
    assert text.startswith("Integrated Gradients: most faithful (insertion − deletion 0.940)")
    assert "its |map| survives randomisation (Spearman 0.850" in text
    assert "only its sign reflects the model" in text
    assert "Grad-CAM: faithful" in text and "it tracks the input, not the model" in text
    assert "disagree most for Integrated Gradients vs Grad-CAM (0.600)" in text
    assert "least for Integrated Gradients vs Saliency (0.300)" in text
    assert text.endswith(
        "Supported on this data: Saliency. Not supported: Integrated Gradients, Grad-CAM."
    )


def test_a_random_baseline_decides_faithfulness_when_present():
    beats = _faith("saliency", 0.2, 0.9, random_deletion_mean=0.5, random_insertion_mean=0.5)
    chance = _faith("grad_cam", 0.5, 0.52, random_deletion_mean=0.5, random_insertion_mean=0.5)
    (mv,) = model_verdicts(
        ["m"], ["saliency", "grad_cam"], faith=[beats, chance], title=method_title
    )
    assert [v.faithful for v in mv.methods] == [True, False]
    assert "Grad-CAM: not faithful: no better than the random order" in mv.paragraph


def test_a_job_without_faithfulness_or_sanity_says_so_and_supports_nothing():
    (mv,) = model_verdicts(
        ["m"], ["saliency", "grad_cam"], pairs=[{"pair": "saliency vs grad_cam", "mean": 0.4}]
    )
    assert all(v.supported is None for v in mv.methods)
    assert "measured neither faithfulness nor the sanity check" in mv.paragraph


def test_cross_model_maps_are_split_per_model():
    models = ["digits-cnn", "digits-cnn-weak"]
    assert split_name("digits-cnn-weak:grad_cam", models) == ("digits-cnn-weak", "grad_cam")
    assert split_name("digits-cnn:grad_cam", models) == ("digits-cnn", "grad_cam")
    pairs = [{"pair": "digits-cnn:saliency vs digits-cnn-weak:saliency", "mean": 0.7}]
    verdicts = model_verdicts(models, ["saliency"], pairs=pairs)
    assert [v.model for v in verdicts] == models
    assert verdicts[1].methods[0].disagreement == {"digits-cnn:saliency": 0.7}


CONFIGS = [
    {"superpixels": "grid", "n_segments": n, "k_frac": k} for n in (16, 49) for k in (0.05, 0.25)
]


def test_the_default_ranking_configuration_is_the_most_informative_and_never_k_1():
    keys = ["n_segments", "k_frac"]
    assert choose_config(CONFIGS, keys) == {"n_segments": 49, "k_frac": 0.25}
    # only k_frac 0.05: n_segments 16 gives k = 1, 49 gives k = 2
    small = [c for c in CONFIGS if c["k_frac"] == 0.05]
    assert choose_config(small, keys) == {"n_segments": 49, "k_frac": 0.05}
    # n_segments at its default (200) wins when the job has it
    slic = [{"n_segments": n, "k_frac": 0.05} for n in (200, 400)]
    assert choose_config(slic, keys) == {"n_segments": 200, "k_frac": 0.05}
    # a k = 1 configuration only when it is the only one
    assert choose_config([CONFIGS[0]], keys) == {"n_segments": 16, "k_frac": 0.05}


def test_rank_at_chooses_and_bad_values_name_the_key():
    keys = ["n_segments", "k_frac"]
    wanted = parse_rank_at("n_segments=16, k_frac=0.05")
    assert choose_config(CONFIGS, keys, requested=wanted) == {"n_segments": 16, "k_frac": 0.05}
    with pytest.raises(QueryError, match="n_segments=17 is not in the job"):
        choose_config(CONFIGS, keys, requested={"n_segments": "17"})
    with pytest.raises(QueryError, match="unknown key 'colour'"):
        choose_config(CONFIGS, keys, requested={"colour": "red"})
    with pytest.raises(QueryError, match="KEY=VALUE"):
        parse_rank_at("n_segments")


def test_the_paired_difference_against_the_random_order_decides_when_stored():
    # the faithfulness_stats columns: per-sample differences method - random order
    def paired(method: str, d: tuple[float, float, float], i: tuple[float, float, float]):
        row = _faith(method, 0.3, 0.7)
        row.update(
            {f"deletion_vs_random_{k}": x for k, x in zip(("mean", "low", "high"), d, strict=True)}
        )
        row.update(
            {f"insertion_vs_random_{k}": x for k, x in zip(("mean", "low", "high"), i, strict=True)}
        )
        return row

    good = paired("saliency", (-0.2, -0.3, -0.1), (0.2, 0.1, 0.3))
    wrong = paired("grad_cam", (0.1, 0.05, 0.15), (0.2, 0.1, 0.3))  # deletes slower than chance
    unsure = paired("rise", (-0.1, -0.2, 0.01), (0.2, 0.1, 0.3))  # deletion interval holds 0
    (mv,) = model_verdicts(
        ["m"], ["saliency", "grad_cam", "rise"], faith=[good, wrong, unsure], title=method_title
    )
    assert [v.faithful for v in mv.methods] == [True, False, None]
    # measured but inconclusive is neither supported nor rejected, and the paragraph says so
    assert [v.supported for v in mv.methods] == [True, False, None]
    assert "RISE: faithfulness inconclusive" in mv.paragraph
    assert "Inconclusive (more samples needed): RISE." in mv.paragraph


def test_the_disagreement_between_maps_is_a_table_of_its_own_beside_the_trust_columns():
    """A verdict with faithfulness or sanity rows is two tables: the trust columns, then the
    ``vs`` matrix (a job over two models and three methods has six ``vs`` columns, too many
    beside the trust columns to fit a page). Without them, the matrix alone, uncaptioned."""
    from xaiq.report.verdict_section import verdict_parts

    models = ["digits-cnn", "digits-cnn-weak"]
    names = [f"{m}:{x}" for m in models for x in METHODS]
    faith = [_faith(n, 0.1 + 0.05 * i, 0.9) for i, n in enumerate(names)]
    pairs = [
        {"pair": f"{a} vs {b}", "mean": 0.1 * (i + 1)}
        for i, (a, b) in enumerate((a, b) for j, a in enumerate(names) for b in names[j + 1 :])
    ]
    verdicts = model_verdicts(models, METHODS, faith=faith, pairs=pairs, title=method_title)
    for mv in verdicts:
        (_, trust, trust_cols), (caption, matrix, matrix_cols) = verdict_parts(mv, False)
        assert not any(c.startswith("vs ") for c in trust_cols)
        assert {"deletion AUC ↓", "insertion AUC ↑", "faithful", "supported"} <= set(trust_cols)
        assert caption.startswith("Mean ") and "between the maps" in caption
        # every other map of both models, one column each; a map against itself is "—"
        assert matrix_cols[0] == "method" and len(matrix_cols) == 1 + len(names)
        assert [r["method"] for r in matrix] == [r["method"] for r in trust]
        assert sum(v == "—" for r in matrix for v in r.values()) == len(METHODS)
    only = model_verdicts(
        ["m"], ["saliency", "grad_cam"], pairs=[{"pair": "saliency vs grad_cam", "mean": 0.4}]
    )
    ((caption, rows, cols),) = verdict_parts(only[0], True)
    assert caption == "" and cols == ["method", "vs Saliency", "vs Grad-CAM"]
    assert rows[0]["vs Grad-CAM"] == 0.4
