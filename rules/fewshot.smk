# Few-shot stage: the linear probe at k train images per class, one curve per (model, target).


rule fewshot:
    input:
        "results/{dataset}/embeddings/{model}.parquet",
        unpack(fewshot_reused_fit),
        duplicates=duplicates_dropped,
    output:
        "results/{dataset}/fewshot/{model}/{target}.json",
    log:
        "results/{dataset}/logs/fewshot/{model}/{target}.log",
    benchmark:
        "results/{dataset}/benchmarks/fewshot/{model}/{target}.tsv"
    conda:
        "../envs/fewshot.yaml"
    threads: 2
    resources:
        **probe_gpu_resources(fewshot_kind),
        mem_mb=8000,
        runtime=240,
    params:
        fewshot=fewshot_params,
    script:
        "../scripts/fewshot.py"
