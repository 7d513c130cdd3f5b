"""Per-rule job time of a finished run, from Snakemake's ``benchmark:`` files.

    python bench/rule_table.py results/demo            # one run
    python bench/rule_table.py /tmp/demo-base/results/demo results/demo   # before, after

Reads ``<results_dir>/benchmarks/**/*.tsv`` (the rule is the first folder under
``benchmarks/``, or the file's stem for a rule with one job) and, for a dataset folder
``results/<name>``, the dataset-independent rules' ``results/benchmarks/*.tsv`` beside it.
Prints one row per rule: jobs, summed / mean / max wall seconds, summed CPU seconds, largest
max_rss (MB). On a loaded machine compare CPU seconds, not wall seconds (which stretch with
the load), but read them as a lower bound: Snakemake samples a job's CPU time every 0.5 s for
its first ~15 s, then every 30 s, so what a long job spends after its last sample is missed.
"""

from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path

COLUMNS = ("rule", "jobs", "sum_s", "mean_s", "max_s", "cpu_s", "max_rss_mb")


def _read_tsv(path: Path) -> dict:
    with open(path, newline="") as fh:
        row = next(csv.DictReader(fh, delimiter="\t"))

    def num(key: str) -> float:
        value = row.get(key, "")
        return float(value) if value not in ("", "-", "NA") else 0.0

    return {"s": num("s"), "cpu": num("cpu_time"), "rss": num("max_rss")}


def benchmark_files(results_dir: str | os.PathLike) -> dict[str, list[Path]]:
    """``{rule: [tsv, ...]}`` of a run's benchmark files (see the module doc)."""
    results_dir = Path(results_dir)
    found: dict[str, list[Path]] = {}
    roots = [results_dir / "benchmarks"]
    shared = results_dir.parent / "benchmarks"
    if shared != roots[0] and shared.is_dir():
        roots.append(shared)
    for root in roots:
        for tsv in sorted(root.rglob("*.tsv")):
            rel = tsv.relative_to(root)
            rule = rel.parts[0] if len(rel.parts) > 1 else tsv.stem
            found.setdefault(rule, []).append(tsv)
    return found


def rule_table(results_dir: str | os.PathLike) -> list[dict]:
    """One dict per rule (keys :data:`COLUMNS`), most summed wall seconds first, then a
    ``total`` row. ValueError when the folder holds no benchmark files."""
    files = benchmark_files(results_dir)
    if not files:
        raise ValueError(f"{results_dir}: no benchmarks/**/*.tsv (has the run finished a job?)")
    rows = []
    for rule, paths in files.items():
        runs = [_read_tsv(p) for p in paths]
        secs = [r["s"] for r in runs]
        rows.append(
            {
                "rule": rule,
                "jobs": len(runs),
                "sum_s": sum(secs),
                "mean_s": sum(secs) / len(secs),
                "max_s": max(secs),
                "cpu_s": sum(r["cpu"] for r in runs),
                "max_rss_mb": max(r["rss"] for r in runs),
            }
        )
    rows.sort(key=lambda r: -r["sum_s"])
    jobs = sum(r["jobs"] for r in rows)
    total = sum(r["sum_s"] for r in rows)
    rows.append(
        {
            "rule": "total",
            "jobs": jobs,
            "sum_s": total,
            "mean_s": total / jobs,
            "max_s": max(r["max_s"] for r in rows),
            "cpu_s": sum(r["cpu_s"] for r in rows),
            "max_rss_mb": max(r["max_rss_mb"] for r in rows),
        }
    )
    return rows


def format_table(rows: list[dict]) -> str:
    """``rows`` as an aligned plain-text (and Markdown-pasteable) table."""
    head = "| rule | jobs | sum s | mean s | max s | cpu s | max_rss MB |"
    lines = [head, "|" + "---|" * 7]
    for r in rows:
        lines.append(
            f"| {r['rule']} | {r['jobs']} | {r['sum_s']:.1f} | {r['mean_s']:.1f} | {r['max_s']:.1f} "
            f"| {r['cpu_s']:.1f} | {r['max_rss_mb']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "results_dir",
        nargs="+",
        help="a run's results/<dataset> folder (several: one table each)",
    )
    a = ap.parse_args(argv)
    for d in a.results_dir:
        print(f"{d}:")
        print(format_table(rule_table(d)))


if __name__ == "__main__":
    main()
