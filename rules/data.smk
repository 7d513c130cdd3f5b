# Data stage: (demo) source -> manifest (checkpoint) -> split + image shards.


rule generate_demo:
    output:
        directory(os.path.normpath(config["dataset"]["source"])),
    log:
        "results/logs/generate_demo.log",
    benchmark:
        "results/benchmarks/generate_demo.tsv"
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
