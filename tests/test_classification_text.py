"""artprobe.probes.classification_text writes scikit-learn's classification report without importing it."""

import numpy as np
import pytest
from sklearn.metrics import classification_report as sk_report

from artprobe.probes.classification_text import classification_report


def _both(y_true, y_pred, names, digits=4):
    present = sorted(set(np.asarray(y_true).tolist()) | set(np.asarray(y_pred).tolist()))
    target_names = [names[i] for i in present]
    ours = classification_report(
        y_true, y_pred, labels=present, target_names=target_names, digits=digits
    )
    theirs = sk_report(
        y_true,
        y_pred,
        labels=present,
        target_names=target_names,
        digits=digits,
        zero_division=0,
    )
    return ours, theirs


@pytest.mark.parametrize("seed", range(40))
def test_same_text_as_sklearn_on_random_predictions(seed):
    rng = np.random.default_rng(seed)
    n_classes = int(rng.integers(1, 30))
    n = int(rng.integers(1, 400))
    names = [f"class {i}" + "x" * int(rng.integers(0, 20)) for i in range(n_classes)]
    y_true = rng.integers(0, n_classes, n)
    # mostly right, sometimes a class only predicted or never predicted (zero divisions)
    y_pred = np.where(rng.random(n) < rng.random(), y_true, rng.integers(0, n_classes, n))
    ours, theirs = _both(y_true, y_pred, names, digits=int(rng.integers(2, 6)))
    assert ours == theirs


def test_same_text_on_rounding_boundaries():
    # 1/32 = 0.03125 and 5/16 = 0.3125 are exact in binary: a value computed another way
    # (p * r / (p + r) instead of counts) could print 0.0313 where sklearn prints 0.0312
    y_true = np.array([0] * 32 + [1] * 16 + [2] * 3)
    y_pred = np.array([0] + [1] * 31 + [1] * 5 + [0] * 11 + [2, 0, 1])
    ours, theirs = _both(y_true, y_pred, ["Impressionism", "Baroque", "Cubism"])
    assert ours == theirs
    assert "0.0312" in ours or "0.3125" in ours


def test_one_class_and_predictions_outside_truth():
    ours, theirs = _both(np.array([2, 2, 2]), np.array([2, 2, 2]), ["a", "b", "c"])
    assert ours == theirs
    ours, theirs = _both(np.array([0, 0, 1]), np.array([3, 0, 1]), ["a", "b", "c", "d"])
    assert ours == theirs
    assert "accuracy" in ours and "    d " in ours


def test_labels_must_cover_every_class():
    with pytest.raises(ValueError, match=r"leave out classes that occur: \[1\]"):
        classification_report([0, 1], [0, 0], labels=[0], target_names=["a"])
    with pytest.raises(ValueError, match="2 labels but 1 target names"):
        classification_report([0, 1], [0, 1], labels=[0, 1], target_names=["a"])


def test_a_classify_job_does_not_import_sklearn(tmp_path):
    """The report text costs a classify job no scikit-learn import (~2 s CPU per job)."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys, numpy as np\n"
        "from artprobe.stages.classify import report_text\n"
        "text = report_text(np.array([0, 1, 1]), np.array([0, 1, 0]), ['a', 'b'])\n"
        "print('accuracy' in text, 'sklearn' in sys.modules)\n"
    )
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "False"]
