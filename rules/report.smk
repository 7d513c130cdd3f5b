# Report stage: the paintings it shows (read once from the shards), then tables, plots and
# painting sheets over every fit, wrapped for `snakemake --report`.


rule thumbnails:
    input:
        fits=fit_inputs,
        embeddings=expand("results/{{dataset}}/embeddings/{model}.parquet", model=MODELS),
        shards=per_shard("results/{dataset}/shards/{shard}.parquet"),
        duplicates=duplicates_dropped,
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
        targets=TARGETS,
        select=thumbnail_params,
    script:
        "../scripts/thumbnails.py"


rule report:
    input:
        fits=fit_inputs,
        fewshot=fewshot_inputs(),
        embeddings=expand("results/{{dataset}}/embeddings/{model}.parquet", model=MODELS),
        failures=expand("results/{{dataset}}/embeddings/{model}.failures.parquet", model=MODELS),
        manifest="results/{dataset}/manifest.json",
        split="results/{dataset}/split.parquet",
        duplicates=duplicates_scan,
        rows="results/{dataset}/thumbnails/rows.json",
        thumbnails="results/{dataset}/thumbnails/thumbnails.parquet",
    output:
        report_outputs(),
    log:
        "results/{dataset}/logs/report.log",
    benchmark:
        "results/{dataset}/benchmarks/report.tsv"
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        models=list(MODELS),
        ids=report_ids(),
        report=report_params,
    script:
        "../scripts/report.py"
