# Classify stage: one fit per (model, target, classifier).


rule classify:
    input:
        "results/{dataset}/embeddings/{model}.parquet",
        duplicates=duplicates_dropped,
    output:
        metrics="results/{dataset}/classify/{model}/{target}/{classifier}/metrics.json",
        classification_report="results/{dataset}/classify/{model}/{target}/{classifier}/classification_report.txt",
        predictions="results/{dataset}/classify/{model}/{target}/{classifier}/predictions.parquet",
        history="results/{dataset}/classify/{model}/{target}/{classifier}/history.csv",
    log:
        "results/{dataset}/logs/classify/{model}/{target}/{classifier}.log",
    benchmark:
        "results/{dataset}/benchmarks/classify/{model}/{target}/{classifier}.tsv"
    conda:
        "../envs/classify.yaml"
    threads: 2
    resources:
        **probe_gpu_resources(classifier_kind),
        mem_mb=8000,
        runtime=120,
    params:
        fit=fit_params,
    script:
        "../scripts/classify.py"
