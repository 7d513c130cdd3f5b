# Report stage: the summary, comparisons and verdict of every fit (computed once), the
# paintings it shows (taken from the image_hash job's previews, never from
# the shards' images), then tables, plots and painting sheets over every fit, wrapped for
# `snakemake --report`.


rule compare:
    input:
        fits=fit_inputs,
    output:
        summary="results/{dataset}/compare/summary.parquet",
        comparisons="results/{dataset}/compare/comparisons.parquet",
        verdict="results/{dataset}/compare/verdict.parquet",
        leaderboard="results/{dataset}/compare/leaderboard.parquet",
        mean_ranks="results/{dataset}/compare/mean_ranks.parquet",
    log:
        "results/{dataset}/logs/compare.log",
    benchmark:
        "results/{dataset}/benchmarks/compare.tsv"
    conda:
        "../envs/compare.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        models=list(MODELS),
        compare=compare_params,
    script:
        "../scripts/compare.py"


rule thumbnails:
    input:
        fits=fit_inputs,
        embeddings=expand("results/{{dataset}}/embeddings/{model}.parquet", model=MODELS),
        shards=per_shard("results/{dataset}/previews/{shard}.arrow"),
        duplicates=duplicates_dropped,
        verdict="results/{dataset}/compare/verdict.parquet",
        mean_ranks="results/{dataset}/compare/mean_ranks.parquet",
    output:
        rows="results/{dataset}/thumbnails/rows.json",
        thumbnails="results/{dataset}/thumbnails/thumbnails.parquet",
    log:
        "results/{dataset}/logs/thumbnails.log",
    benchmark:
        "results/{dataset}/benchmarks/thumbnails.tsv"
    conda:
        "../envs/thumbnails.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        models=list(MODELS),
        select=thumbnail_params,
    script:
        "../scripts/thumbnails.py"


# one report rule per dataset: its files depend on the dataset's targets
for name in DATASETS:

    rule:
        name:
            f"report_{name}"
        input:
            fits=fit_inputs,
            fewshot=fewshot_inputs,
            embeddings=expand("results/{{dataset}}/embeddings/{model}.parquet", model=MODELS),
            failures=expand("results/{{dataset}}/embeddings/{model}.failures.parquet", model=MODELS),
            manifest="results/{dataset}/manifest.json",
            split="results/{dataset}/split.parquet",
            duplicates=duplicates_scan,
            rows="results/{dataset}/thumbnails/rows.json",
            thumbnails="results/{dataset}/thumbnails/thumbnails.parquet",
            summary="results/{dataset}/compare/summary.parquet",
            comparisons="results/{dataset}/compare/comparisons.parquet",
            verdict="results/{dataset}/compare/verdict.parquet",
            leaderboard="results/{dataset}/compare/leaderboard.parquet",
            mean_ranks="results/{dataset}/compare/mean_ranks.parquet",
        output:
            report_outputs(name),
        log:
            "results/{dataset}/logs/report.log",
        benchmark:
            "results/{dataset}/benchmarks/report.tsv"
        wildcard_constraints:
            dataset=one_of([name]),
        conda:
            "../envs/report.yaml"
        threads: 1
        resources:
            mem_mb=8000,
            runtime=60,
        params:
            models=list(MODELS),
            ids=report_ids(name),
            report=report_params,
        script:
            "../scripts/report.py"


rule leaderboard:
    input:
        fits=leaderboard_inputs,
        verdicts=expand("results/{dataset}/compare/verdict.parquet", dataset=DATASETS),
    output:
        table=report(
            f"{LEADERBOARD}/leaderboard.csv",
            caption="../report/overall_leaderboard.rst",
            category="0. Leaderboard",
            labels={"content": "every model, dataset and target (CSV)"},
        ),
        mean_ranks=report(
            f"{LEADERBOARD}/mean_ranks.csv",
            caption="../report/overall_leaderboard.rst",
            category="0. Leaderboard",
            labels={"content": "mean ranks (CSV)"},
        ),
        page=report(
            f"{LEADERBOARD}/leaderboard.html",
            caption="../report/overall_leaderboard.rst",
            category="0. Leaderboard",
            labels={"content": "ranks with 95 % rank intervals"},
        ),
    log:
        f"{LEADERBOARD}/logs/leaderboard.log",
    benchmark:
        f"{LEADERBOARD}/benchmarks/leaderboard.tsv"
    conda:
        "../envs/leaderboard.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        datasets=list(DATASETS),
        compare=compare_params,
    script:
        "../scripts/leaderboard.py"
