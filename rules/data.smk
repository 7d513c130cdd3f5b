# Data stage: (demo) source -> manifest (checkpoint) -> split + image shards, and the
# near-duplicate scan across the split (a perceptual hash per shard, val/test against train).
# image_hash runs for every dataset: its one decode per image also writes the previews the
# report's thumbnails are taken from (split.duplicate_distance null only skips the scan).


rule generate_demo:
    output:
        directory("results/{dataset}/source"),
    log:
        "results/{dataset}/logs/generate_demo.log",
    benchmark:
        "results/{dataset}/benchmarks/generate_demo.tsv"
    wildcard_constraints:
        dataset=one_of(DEMOS),  # a real dataset's source is never made here
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        demo=demo_params,
    script:
        "../scripts/generate_demo.py"


checkpoint manifest:
    input:
        manifest_input,
    output:
        "results/{dataset}/manifest.json",
        index="results/{dataset}/rows.parquet",
    log:
        "results/{dataset}/logs/manifest.log",
    benchmark:
        "results/{dataset}/benchmarks/manifest.tsv"
    conda:
        "../envs/data.yaml"
    threads: 4
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        source=source_params,
    script:
        "../scripts/manifest.py"


rule split:
    input:
        "results/{dataset}/manifest.json",
        index=split_index,
    output:
        "results/{dataset}/split.parquet",
    log:
        "results/{dataset}/logs/split.log",
    benchmark:
        "results/{dataset}/benchmarks/split.tsv"
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        split=split_params,
    script:
        "../scripts/split.py"


rule shard:
    input:
        "results/{dataset}/manifest.json",
        index="results/{dataset}/rows.parquet",
    output:
        "results/{dataset}/shards/{shard}.parquet",
    log:
        "results/{dataset}/logs/shard/{shard}.log",
    benchmark:
        "results/{dataset}/benchmarks/shard/{shard}.tsv"
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        rows=shard_range,
    script:
        "../scripts/shard.py"


rule image_hash:
    input:
        "results/{dataset}/shards/{shard}.parquet",
    output:
        hashes="results/{dataset}/hashes/{shard}.parquet",
        previews="results/{dataset}/previews/{shard}.arrow",
    log:
        "results/{dataset}/logs/image_hash/{shard}.log",
    benchmark:
        "results/{dataset}/benchmarks/image_hash/{shard}.tsv"
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    script:
        "../scripts/image_hash.py"


rule duplicates:
    input:
        hashes=per_shard("results/{dataset}/hashes/{shard}.parquet"),
        split="results/{dataset}/split.parquet",
    output:
        "results/{dataset}/duplicates.parquet",
    log:
        "results/{dataset}/logs/duplicates.log",
    benchmark:
        "results/{dataset}/benchmarks/duplicates.tsv"
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        distance=duplicate_distance,
    script:
        "../scripts/duplicates.py"
