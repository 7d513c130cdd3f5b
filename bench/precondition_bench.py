"""The linear probe with and without the per-class block preconditioner, on real embeddings.

    python bench/precondition_bench.py /work/scale/results/scale/embeddings/convnext.parquet
    python bench/precondition_bench.py EMB.parquet --targets style --fewshot   # + the curve

Fits ``config.yaml``'s linear probe (its whole C search) per target twice in this process:
with the diagonal only (the blocks' cost set to infinity, so never formed) and as the
workflow fits it (:mod:`artprobe.probes.precondition`). ``--fewshot`` also fits the few-shot
curve (1-100 shots x 3 trials; the ``all`` point is the classify fit, left out). Prints,
per target and mode: seconds, Hessian products, solves on class blocks and the chosen C.
Run it on a quiet machine: the two modes run one after the other.
"""

from __future__ import annotations

import argparse
import time
from contextlib import nullcontext

import common  # noqa: F401  (the checkout on sys.path)

from artprobe.probes import precondition, registry
from artprobe.probes.curve import fewshot_curve
from artprobe.probes.fit import fit
from artprobe.probes.shared import FitContext, FitData
from artprobe.settings import FewshotSpec, ProbeRuntime
from artprobe.stages.classify import load_fit_data


def linear(data: dict, threads: int) -> dict:
    t0 = time.perf_counter()
    res = fit(
        "linear",
        registry.get("linear").resolve({}),
        FitData(*data["train"][:2], *data["val"][:2], data["test"][0]),
        FitContext(n_classes=len(data["classes"]), device="cpu"),
        threads=threads,
    )
    grid = res.info["grid"]
    return {
        "seconds": time.perf_counter() - t0,
        "products": sum(g["hessian_products"] for g in grid),
        "block_solves": sum(g["block_solves"] for g in grid),
        "C": res.info["C"],
    }


def curve(data: dict, threads: int) -> dict:
    t0 = time.perf_counter()
    spec = FewshotSpec(
        model="bench",
        target="bench",
        shots=[1, 2, 5, 10, 25, 100],
        trials=3,
        params=registry.get("linear").resolve({}),
        drop_labels=[],
        min_class_count=None,
        seed=0,
    )
    parts = (data["train"][:2], data["val"][:2], data["test"][:2])
    fewshot_curve(spec, parts, len(data["classes"]), ProbeRuntime(device="cpu", threads=threads))
    return {"seconds": time.perf_counter() - t0}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("embeddings", help="a merged embeddings file (results/<dataset>/embeddings)")
    ap.add_argument("--targets", default="genre,style,artist")
    ap.add_argument("--fewshot", action="store_true", help="also the few-shot curve")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    for target in a.targets.split(","):
        data = load_fit_data(a.embeddings, target)
        for mode in ("diagonal", "blocks"):
            with precondition.diagonal_only() if mode == "diagonal" else nullcontext():
                r = linear(data, a.threads)
                print(
                    f"{target:8s} {mode:8s} linear {r['seconds']:7.1f} s, "
                    f"{r['products']:6d} Hessian products, {r['block_solves']:4d} block solves, "
                    f"C = {r['C']:.3g}",
                    flush=True,
                )
                if a.fewshot:
                    print(
                        f"{target:8s} {mode:8s} few-shot {curve(data, a.threads)['seconds']:7.1f} s"
                    )


if __name__ == "__main__":
    main()
