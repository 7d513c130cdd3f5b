"""artprobe.report.leaderboard: rank intervals that cover in simulation, hand-checkable
rankings, the Holm set, mean ranks across targets and datasets.

The simulation helpers here (:func:`simulated_fits`, :func:`true_places`, :func:`coverage`)
also drive bench/rank_interval_sim.py, the longer run of docs/benchmarks.md."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from artprobe.probes import metrics
from artprobe.probes.metrics import compare
from artprobe.report import leaderboard as lb
from artprobe.report.leaderboard import leaderboard
from artprobe.report.tables import holm

N_CLASSES, N_SEEDS, BASE_ACC = 10, 3, 0.75


def fit(model, y, preds, *, target="style", probe="mlp", row_ids=None):
    """A loaded fit as the report holds it: predictions with every seed's ids."""
    preds = [np.asarray(p) for p in preds]
    df = pd.DataFrame(
        {
            "row_id": np.arange(len(y)) if row_ids is None else row_ids,
            "y_true": y,
            "y_pred": preds[0],
        }
    )
    if len(preds) > 1:
        df["y_pred_seeds"] = list(np.stack(preds, axis=1))
    return {
        "model": model,
        "target": target,
        "classifier": probe,
        "kind": probe,
        "metrics": {},
        "class_names": [f"c{i}" for i in range(N_CLASSES)],
        "predictions": df,
    }


def right_on(y, n_right, rng=None, offset=0):
    """Predictions right on rows ``offset .. offset + n_right - 1`` (cyclically), else off
    by one class; with ``rng``, right on ``n_right`` rows drawn at random."""
    n = len(y)
    right = np.zeros(n, bool)
    if rng is None:
        right[(offset + np.arange(n_right)) % n] = True
    else:
        right[rng.choice(n, n_right, replace=False)] = True
    return np.where(right, y, (y + 1) % N_CLASSES)


def simulated_fits(rng, points, n, *, model_sd=0.5, flip_sd=0.35, shift=0.7):
    """One fit (three seeds) per model of known true accuracy ``BASE_ACC + points[k] / 100``
    on ``n`` fresh test rows of 10 classes. A seed's fit is right on a row when
    ``z + u + e + s + g > 0``: ``z`` the row's difficulty (every model), ``u`` the model's own
    view of the row (sd ``model_sd``, its seeds share it), ``e`` the seed's per-row flips (sd
    ``flip_sd``), ``s`` the seed's shift of the whole model (sd ``shift`` accuracy points),
    ``g`` the model's gap; wrong rows predict a random other class."""
    sd = np.sqrt(1 + model_sd**2 + flip_sd**2)
    mu = sd * stats.norm.ppf(BASE_ACC)
    per_point = sd / stats.norm.pdf(mu / sd) / 100  # z units per accuracy point
    z, y = rng.normal(mu, 1.0, n), rng.integers(0, N_CLASSES, n)
    out = []
    for k, gap in enumerate(points):
        u = rng.normal(0, model_sd, n)
        preds = []
        for _ in range(N_SEEDS):
            e, s = rng.normal(0, flip_sd, n), rng.normal(0, shift * per_point)
            wrong = (y + 1 + rng.integers(0, N_CLASSES - 1, n)) % N_CLASSES
            preds.append(np.where(z + u + e + s + gap * per_point > 0, y, wrong))
        out.append(fit(f"m{k}", y, preds))
    return out


def true_places(points) -> tuple[np.ndarray, np.ndarray]:
    """Each model's true rank as a range: tied models (equal true accuracy) share the places
    they span, any of which is a correct rank."""
    g = np.asarray(points)
    return np.array([1 + (g > x).sum() for x in g]), np.array([(g >= x).sum() for x in g])


def coverage(points, n, reps, *, seed=0, n_boot=200, shift=0.7, point_ranks=False, method=None):
    """(covered [reps, models], interval widths [reps, models], observed ranks) of the
    accuracy rank intervals over ``reps`` simulated test sets; an interval covers when it
    meets the model's true range. ``point_ranks``: the broken variant whose interval is the
    observed rank alone."""
    rng = np.random.default_rng(seed)
    lo, hi = true_places(points)
    covered, widths, ranks = [], [], []
    for r in range(reps):
        fits = simulated_fits(rng, points, n, shift=shift)
        method = method or lb.Method()
        t = leaderboard(fits, n_boot=n_boot, seed=r, metrics=("accuracy",), method=method).table
        t = t.set_index("model").loc[[f["model"] for f in fits]]
        a, b = t["rank_low"].to_numpy(), t["rank_high"].to_numpy()
        if point_ranks:
            a = b = t["rank"].to_numpy()
        covered.append((a <= hi) & (b >= lo))
        widths.append(b - a)
        ranks.append(t["rank"].to_numpy())
    return np.array(covered), np.array(widths), np.array(ranks)


def test_rank_intervals_cover_the_true_rank_and_broken_ones_do_not():
    # Gaps of 1 point, 8,000 rows, a whole-model seed shift of 1.5 points: the seeds decide.
    ladder = [4, 3, 2, 1, 0]
    ok, width, _ = coverage(ladder, 8000, 15, shift=1.5)
    assert ok.mean() >= 0.93
    assert width.mean() < 3.0  # not the trivial [1, 5] (width 4)
    no_seed_level = lb.Method(seed_level=False)
    assert coverage(ladder, 8000, 15, shift=1.5, method=no_seed_level)[0].mean() < 0.9
    # Gaps of 0, 1 and 3 points, 1,000 rows: the observed rank alone is often wrong.
    mixed = [4, 4, 3, 0, 0, -1]
    ok, width, _ = coverage(mixed, 1000, 15)
    assert ok.mean() >= 0.93 and width.mean() < 3.0
    assert coverage(mixed, 1000, 15, point_ranks=True)[0].mean() < 0.85


def test_three_models_with_clear_gaps_rank_exactly():
    y = np.arange(2000) % N_CLASSES
    fits = [fit(m, y, [right_on(y, k)]) for m, k in (("b", 1400), ("a", 1800), ("c", 1000))]
    t = leaderboard(fits, seed=0, n_boot=300, metrics=("accuracy",)).table
    assert t["model"].tolist() == ["a", "b", "c"]
    assert t[["rank", "rank_low", "rank_high"]].to_numpy().tolist() == [[1, 1, 1], [2, 2, 2]] + [
        [3, 3, 3]
    ]
    assert t["value"].tolist() == [0.9, 0.7, 0.5]
    assert t["with_best"].tolist() == [True, False, False]
    assert (t["ci_low"] < t["value"]).all() and (t["value"] < t["ci_high"]).all()


def test_the_holm_set_is_the_best_and_whom_holm_cannot_separate_from_it():
    # a right on 1,600 of 2,000 rows, b on 1,590 (alone on 190, a alone on 200), c on 1,200
    y = np.arange(2000) % N_CLASSES
    a, b, c = right_on(y, 1600), right_on(y, 1590, offset=200), right_on(y, 1200)
    fits = [fit("a", y, [a]), fit("b", y, [b]), fit("c", y, [c])]
    t = leaderboard(fits, n_boot=500, seed=3, metrics=("accuracy",)).table.set_index("model")
    assert t["with_best"].to_dict() == {"a": True, "b": True, "c": False}
    assert t.loc["a", "best"] and np.isnan(t.loc["a", "p_value"])
    # the p-values are compare's on the same rows and seed, Holm over the family of two
    p = [compare(y, [a], [other], n_boot=500, seed=3)["p_value"] for other in (b, c)]
    assert t.loc[["b", "c"], "p_value"].tolist() == pytest.approx(p, rel=1e-9)
    assert t.loc[["b", "c"], "p_holm"].tolist() == pytest.approx(list(holm(p)), rel=1e-9)
    assert t.loc["b", "p_holm"] > 0.05 > t.loc["c", "p_holm"]


def test_the_holm_family_is_the_whole_leaderboard():
    y = np.arange(2000) % N_CLASSES
    preds = {"a": right_on(y, 1600), "b": right_on(y, 1540, offset=300), "c": right_on(y, 1200)}
    one = [fit(m, y, [p]) for m, p in preds.items()]
    two = one + [fit(m, y, [p], target="genre") for m, p in preds.items()]
    t1 = leaderboard(one, seed=0, n_boot=300, metrics=("accuracy",)).table
    t2 = leaderboard(two, seed=0, n_boot=300, metrics=("accuracy",)).table
    assert t2["p_holm"].max() <= 1
    np.testing.assert_array_equal(t2[t2.target == "style"]["p_value"], t1["p_value"])
    assert holm(t2["p_value"]).tolist() == pytest.approx(t2["p_holm"].tolist(), nan_ok=True)
    b1, b2 = (t[(t.target == "style") & (t.model == "b")]["p_holm"].item() for t in (t1, t2))
    assert b2 == pytest.approx(2 * b1)  # the second of four tests of b's p, not of two


def test_a_target_without_shared_rows_is_an_error():
    y = np.arange(100) % N_CLASSES
    fits = [fit("a", y, [y]), fit("b", y, [y], row_ids=np.arange(100, 200))]
    with pytest.raises(ValueError, match="'style': no test row that every fit predicted"):
        leaderboard(fits, seed=0, n_boot=10)


def test_mean_rank_across_two_targets():
    y = np.arange(2000) % N_CLASSES
    style = {"a": 1800, "b": 1400, "c": 1000}
    genre = {"a": 1400, "b": 1800, "c": 1000}
    fits = [fit(m, y, [right_on(y, k)]) for m, k in style.items()]
    fits += [fit(m, y, [right_on(y, k)], target="genre") for m, k in genre.items()]
    board = leaderboard(fits, seed=0, n_boot=300, metrics=("accuracy",))
    mr = board.mean_ranks.set_index("model")
    assert mr["mean_rank"].to_dict() == {"a": 1.5, "b": 1.5, "c": 3.0}
    assert mr[["mean_rank_low", "mean_rank_high"]].loc["a"].tolist() == [1.5, 1.5]
    assert mr[["mean_rank_low", "mean_rank_high"]].loc["c"].tolist() == [3.0, 3.0]
    assert mr["n_rankings"].tolist() == [2, 2, 2]
    assert mr.loc["a", "rankings"] == "style; genre"


def test_mean_rank_interval_widens_where_one_target_is_a_toss_up():
    y = np.arange(1000) % N_CLASSES
    fits = [fit(m, y, [right_on(y, k)]) for m, k in (("a", 900), ("b", 500))]
    fits += [
        fit(m, y, [right_on(y, 700, offset=o)], target="genre") for m, o in (("a", 0), ("b", 7))
    ]
    mr = leaderboard(fits, seed=0, n_boot=300, metrics=("accuracy",)).mean_ranks.set_index("model")
    assert mr.loc["a", "mean_rank"] == 1.25  # tied on genre: each counts 1.5 there
    assert mr.loc["a", "mean_rank_low"] == 1.0 and mr.loc["a", "mean_rank_high"] == 1.5


def test_identical_models_get_overlapping_intervals():
    rng = np.random.default_rng(1)
    y = rng.integers(0, N_CLASSES, 3000)
    seeded = [right_on(y, 2200 + 10 * s, rng) for s in range(N_SEEDS)]
    one = right_on(y, 2100, rng)
    for preds in (seeded, [one]):
        fits = [fit("a", y, preds), fit("twin", y, preds), fit("c", y, [right_on(y, 1500, rng)])]
        t = leaderboard(fits, seed=0, n_boot=300, metrics=("accuracy",)).table.set_index("model")
        assert t.loc["a", "rank"] == t.loc["twin", "rank"] == 1
        assert t.loc["a", "rank_high"] == t.loc["twin", "rank_high"] == 2
        assert t.loc["a", "rank_low"] == t.loc["twin", "rank_low"] == 1
        assert t.loc["c", ["rank_low", "rank_high"]].tolist() == [3, 3]


def test_best_probe_per_model_or_every_probe_its_own_ranking():
    y = np.arange(2000) % N_CLASSES
    fits = [
        fit("a", y, [right_on(y, 1500)], probe="linear"),
        fit("a", y, [right_on(y, 1700)], probe="knn"),
        fit("b", y, [right_on(y, 1600)], probe="linear"),
        fit("b", y, [right_on(y, 1100)], probe="knn"),
    ]
    best = leaderboard(fits, seed=0, n_boot=200, metrics=("accuracy",)).table
    assert best[["model", "probe", "rank"]].to_numpy().tolist() == [
        ["a", "knn", 1],
        ["b", "linear", 2],
    ]
    per = leaderboard(fits, seed=0, n_boot=200, metrics=("accuracy",), per_probe=True)
    got = per.table.set_index(["probe", "model"])["rank"].to_dict()
    assert got == {("linear", "b"): 1, ("linear", "a"): 2, ("knn", "a"): 1, ("knn", "b"): 2}
    assert set(per.table["probe_mode"]) == {"per probe"}
    assert per.mean_ranks.set_index(["probe", "model"])["mean_rank"].to_dict() == got


def test_ranked_on_the_rows_every_model_predicted():
    y = np.arange(1000) % N_CLASSES
    fits = [fit("a", y, [right_on(y, 900)]), fit("b", y[:800], [right_on(y[:800], 700)])]
    t = leaderboard(fits, seed=0, n_boot=100, metrics=("accuracy",)).table
    assert t["n_rows"].tolist() == [800, 800]
    assert "800 test rows every fit predicted" in t["note"].iloc[0]
    assert t.set_index("model")["value"].to_dict() == {"a": 800 / 800, "b": 700 / 800}


def test_deterministic_and_independent_of_chunking(monkeypatch):
    fits = simulated_fits(np.random.default_rng(5), [2, 1, 0, 0], 1500)
    first = leaderboard(fits, n_boot=120, seed=7)
    pd.testing.assert_frame_equal(first.table, leaderboard(fits, n_boot=120, seed=7).table)
    monkeypatch.setattr(metrics, "_ROWS_PER_CHUNK", 1500 * 7)  # 7 resamples a chunk
    chunked = leaderboard(fits, n_boot=120, seed=7)
    pd.testing.assert_frame_equal(first.table, chunked.table, rtol=1e-9)
    pd.testing.assert_frame_equal(first.mean_ranks, chunked.mean_ranks, rtol=1e-9)


def test_value_interval_is_seed_average_s():
    fits = simulated_fits(np.random.default_rng(2), [1, 0], 1200)
    t = leaderboard(fits, n_boot=200, seed=4).table
    for row in t.itertuples():
        f = next(f for f in fits if f["model"] == row.model)
        preds = list(np.stack(f["predictions"]["y_pred_seeds"].to_numpy()).T)
        y = f["predictions"]["y_true"].to_numpy()
        ref = metrics.seed_average(y, preds, metric=row.metric, n_boot=200, seed=4)
        assert (row.value, row.ci_low, row.ci_high) == pytest.approx(
            (ref["value"], ref["ci_low"], ref["ci_high"]), rel=1e-9
        )


def test_datasets_resample_apart_and_mean_ranks_span_them():
    rng = np.random.default_rng(3)
    wikiart = simulated_fits(rng, [2, 0, 1], 1000)
    artbench = simulated_fits(rng, [0, 2, 1], 900)
    alone = leaderboard({"wikiart": wikiart}, seed=0, n_boot=100).table
    both = leaderboard({"wikiart": wikiart, "artbench": artbench}, seed=0, n_boot=100)
    pd.testing.assert_frame_equal(alone, both.table[both.table.dataset == "wikiart"])
    mr = both.mean_ranks
    assert set(mr["n_rankings"]) == {2}
    assert set(mr["rankings"]) == {"wikiart/style; artbench/style"}


def test_seed_resamples_match_compare_and_seed_average():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 7, 1500)
    a = [right_on(y, 1000 + 15 * s, rng) for s in range(3)]
    b = [right_on(y, 980 + 20 * s, rng) for s in range(3)]
    for metric in metrics.COUNTED:
        ra, rb = metrics.SeedResamples(y, a), metrics.SeedResamples(y, b)
        chunks = [
            (ra.add(w)[metric], rb.add(w)[metric]) for w in metrics.resample_weights(1500, 400, 9)
        ]
        sa, sb = (np.concatenate(c) for c in zip(*chunks))
        p = metrics.resampled_p_value(ra, rb, metric, sa - sb)
        assert p == pytest.approx(compare(y, a, b, metric=metric, n_boot=400, seed=9)["p_value"])
        ref = metrics.seed_average(y, a, metric=metric, n_boot=400, seed=9)
        got = metrics.seed_average_interval(ra, metric, sa, seed=9)
        assert got == pytest.approx((ref["ci_low"], ref["ci_high"]))


def test_the_flips_come_off_each_model_and_the_pairs_keep_their_covariance():
    rng = np.random.default_rng(4)
    common = rng.normal(0, 1.0, (2000, 1))
    s = common + rng.normal(0, 0.5, (2000, 3))  # three models' resampled scores, correlated
    flips = np.array([0.1, 0.0, 0.2])
    got = lb._rows_less_flips(s, flips)
    want = np.cov(s, rowvar=False) - np.diag(flips)
    np.testing.assert_allclose(np.cov(got, rowvar=False), want, atol=1e-10)
    np.testing.assert_allclose(got.mean(axis=0), s.mean(axis=0))


# ---------------------------------------------------------------- the leaderboard stage


def _with_metrics(fits) -> list[dict]:
    """The fits with the headline values a fit's metrics.json carries (seed 0's)."""
    out = []
    for f in fits:
        p = f["predictions"]
        acc = float((p["y_pred"] == p["y_true"]).mean())
        m = {k: {"value": acc, "ci_low": acc - 0.02, "ci_high": acc + 0.02} for k in lb.HEADLINE}
        out.append({**f, "metrics": {**f["metrics"], **m}})
    return out


def _write_fits(root, fits) -> list[str]:
    """The files of each simulated fit where the classify stage puts them:
    ``root/classify/<model>/<target>/<probe>/``."""
    import pyarrow as pa

    from artprobe.common.io import write_json, write_parquet

    paths = []
    for f in fits:
        d = root / "classify" / f["model"] / f["target"] / f["classifier"]
        meta = {k: f[k] for k in ("model", "target", "classifier", "kind", "class_names")}
        meta.update(f["metrics"])
        write_json(d / "metrics.json", meta)
        write_parquet(
            pa.Table.from_pandas(f["predictions"], preserve_index=False), d / "predictions.parquet"
        )
        paths += [str(d / "metrics.json"), str(d / "predictions.parquet")]
    return paths


def _write_verdict(path, fits, n_boot=100):
    from artprobe.report.compare import TABLES, StandingsFiles, standings, write_standings
    from artprobe.settings import CompareSettings

    s = standings(fits, [f["model"] for f in fits], CompareSettings(n_boot=n_boot, seed=0))
    files = StandingsFiles(*[str(path.parent / f"{n}.parquet") for n in TABLES])
    write_standings(s, files)
    return files.verdict


def test_the_leaderboard_stage_ranks_every_dataset_on_one_page(tmp_path):
    """Two datasets' fit files in (results/<dataset>/classify/...), one leaderboard out: each
    dataset's rankings as it alone would rank them, mean ranks over both, the page naming
    every dataset × target and leading with each dataset's verdict."""
    from artprobe.report.overall import LeaderboardFiles, run_leaderboard
    from artprobe.settings import CompareSettings

    rng = np.random.default_rng(5)
    sims = {
        "wikiart": _with_metrics(simulated_fits(rng, [3, 0, 1], 800)),
        "artbench": _with_metrics(simulated_fits(rng, [0, 3, 1], 600)),
    }
    files, verdicts = [], []
    for name, fits in sims.items():
        files += _write_fits(tmp_path / "results" / name, fits)
        verdicts.append(_write_verdict(tmp_path / "results" / name / "compare" / "v.parquet", fits))
    out = LeaderboardFiles(*(str(tmp_path / "board" / f) for f in ("t.csv", "m.csv", "p.html")))
    run_leaderboard(files, verdicts, list(sims), CompareSettings(n_boot=100, seed=0), out)

    table, mean = pd.read_csv(out.table), pd.read_csv(out.mean_ranks)
    assert set(table["dataset"]) == {"wikiart", "artbench"}
    alone = leaderboard({"artbench": sims["artbench"]}, n_boot=100, seed=0).table
    got = table[table.dataset == "artbench"].reset_index(drop=True)
    assert list(got["model"]) == list(alone["model"])
    np.testing.assert_array_equal(got["rank_high"], alone["rank_high"])
    best = table[(table["rank"] == 1) & (table["metric"] == "accuracy")]
    assert dict(zip(best["dataset"], best["model"])) == {"wikiart": "m0", "artbench": "m1"}
    assert set(mean["n_rankings"]) == {2}
    page = (tmp_path / "board" / "p.html").read_text()
    assert "wikiart: style" in page and "artbench: style" in page
    assert "Mean rank over the datasets and targets" in page
    assert page.count("<li>wikiart: ") >= 1 and page.count("<li>artbench: ") >= 1


def test_fit_files_group_by_their_dataset_folder():
    from artprobe.report.overall import fits_by_dataset

    files = [
        "results/a/classify/m/t/p/metrics.json",
        "/abs/results/b.v2/classify/m/t/p/metrics.json",
    ]
    assert fits_by_dataset(files, ["a", "b.v2"]) == {"a": files[:1], "b.v2": files[1:]}
    with pytest.raises(ValueError, match="not a fit file of the datasets"):
        fits_by_dataset(files, ["a"])
