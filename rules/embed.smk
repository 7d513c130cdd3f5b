# Embed stage: one job per (model, shard), then one merge per model.


rule embed:
    input:
        shard="results/{dataset}/shards/{shard}.parquet",
        weights=model_weights,
        hub_weights=weights_marker,
    output:
        "results/{dataset}/embeddings/{model}/{shard}.parquet",
    log:
        "results/{dataset}/logs/embed/{model}/{shard}.log",
    benchmark:
        "results/{dataset}/benchmarks/embed/{model}/{shard}.tsv"
    conda:
        "../envs/embed.yaml"
    threads: 4
    resources:
        gpu=EMBED_GPUS,
        mem_mb=16000,
        runtime=60,
    params:
        model=model_params,
    script:
        "../scripts/embed.py"


rule merge_embeddings:
    input:
        embeddings=per_shard("results/{dataset}/embeddings/{model}/{shard}.parquet"),
        shards=per_shard("results/{dataset}/shards/{shard}.parquet"),
        split="results/{dataset}/split.parquet",
    output:
        embeddings="results/{dataset}/embeddings/{model}.parquet",
        failures="results/{dataset}/embeddings/{model}.failures.parquet",
    log:
        "results/{dataset}/logs/merge_embeddings/{model}.log",
    benchmark:
        "results/{dataset}/benchmarks/merge_embeddings/{model}.tsv"
    conda:
        "../envs/embed.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        targets=dataset_targets,
    script:
        "../scripts/merge_embeddings.py"
