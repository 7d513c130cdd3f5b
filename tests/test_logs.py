"""artprobe.common.logs: a job's logging, warnings and stderr go to its log file, and every long loop
(embed's shards, merge, the linear C search, the mlp epochs, few-shot curves) leaves progress
lines with a rate there."""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest
from embed_helpers import embed_two_shards

from artprobe.common.logs import progress, to_log
from artprobe.probes.curve import fewshot_curve
from artprobe.probes.fit import fit
from artprobe.probes.shared import FitContext, FitData
from artprobe.settings import FewshotSpec, ProbeRuntime
from artprobe.stages.merge_embeddings import merge_embeddings


def rate_lines(log_text: str, desc: str, unit: str) -> list[str]:
    """The progress lines of bar ``desc`` that show a measured rate (``12.3unit/s`` or ``4.5s/unit``)."""
    rate = re.compile(rf"(\d+\.\d+|\d+){re.escape(unit)}/s|(\d+\.\d+|\d+)s/{re.escape(unit)}")
    return [
        line
        for line in re.split(r"[\r\n]", log_text)
        if line.startswith(f"{desc}:") and rate.search(line)
    ]


def test_progress_goes_to_the_log_with_a_rate_and_logging_too(tmp_path):
    log = tmp_path / "job.log"
    with to_log(log):
        logging.getLogger("artprobe.test").info("starting")
        for _ in progress(range(30), desc="work", unit="item"):
            pass
    text = log.read_text()
    assert "INFO artprobe.test: starting" in text
    done = rate_lines(text, "work", "item")
    assert done and "30/30" in done[-1], text


def test_a_disabled_bar_writes_nothing(tmp_path):
    log = tmp_path / "job.log"
    with to_log(log):
        for _ in progress(range(5), desc="quiet", unit="item", enabled=False):
            pass
    assert "quiet" not in log.read_text()


def test_merge_logs_its_progress(tmp_path):
    case = embed_two_shards(tmp_path)
    log = tmp_path / "merge.log"
    with to_log(log):
        merge_embeddings(
            case["outs"],
            case["shards"],
            case["split"],
            tmp_path / "m.parquet",
            tmp_path / "f.parquet",
            targets=["style"],
        )
    done = rate_lines(log.read_text(), "merge", "shard")
    assert done and "2/2" in done[-1], log.read_text()


def _data(n: int = 90, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    X = (rng.normal(size=(n, 8)) + y[:, None]).astype(np.float32)
    return X, y


@pytest.mark.parametrize(
    "kind, params, bars",
    [
        ("mlp", {"epochs": 3, "hidden": 8}, [("mlp epochs", "epoch")]),
        (
            "linear",
            {"n_c": 3, "refine": 1},
            [("linear C search", "C"), ("linear C refine", "round")],
        ),
    ],
)
def test_classify_fits_log_their_progress(tmp_path, kind, params, bars):
    X, y = _data()
    log = tmp_path / "fit.log"
    with to_log(log):
        rows = FitData(X[:60], y[:60], X[60:75], y[60:75], X[75:])
        fit(kind, params, rows, FitContext(n_classes=3, device="cpu"))
    for desc, unit in bars:
        assert rate_lines(log.read_text(), desc, unit), (desc, log.read_text())


def test_fewshot_logs_its_progress(tmp_path):
    X, y = _data()
    log = tmp_path / "fewshot.log"
    with to_log(log):
        spec = FewshotSpec("m", "t", [1, 2, "all"], 2, {"n_c": 2}, [], None, seed=0)
        data = ((X[:60], y[:60]), (X[60:75], y[60:75]), (X[75:], y[75:]))
        fewshot_curve(spec, data, 3, ProbeRuntime(device="cpu", threads=1))
    done = rate_lines(log.read_text(), "few-shot", "point")
    assert done and "6/6" in done[-1], log.read_text()
    assert (
        "linear C search" not in log.read_text()
    )  # the curve's bar counts its fits; theirs stay quiet
