# Report stage: tables and plots over every fit, wrapped for `snakemake --report`.


rule report:
    input:
        fits=fit_inputs,
        fewshot=fewshot_inputs(),
        embeddings=expand("results/{{dataset}}/embeddings/{model}.parquet", model=MODELS),
        failures=expand("results/{{dataset}}/embeddings/{model}.failures.parquet", model=MODELS),
        manifest="results/{dataset}/manifest.json",
        split="results/{dataset}/split.parquet",
        duplicates=duplicates_scan,
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
