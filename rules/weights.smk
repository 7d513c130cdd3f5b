# Weights stage (pretrained models whose weights come from the hub): one job per model pins
# the hub commit, fetches the file timm loads into the hub cache and checks it. Local rule:
# on SLURM it runs on the login node with the download jobs, so compute nodes need no
# internet; it holds `downloads` like them.


rule weights:
    output:
        "results/{dataset}/weights/{model}.json",
    log:
        "results/{dataset}/logs/weights/{model}.log",
    benchmark:
        "results/{dataset}/benchmarks/weights/{model}.tsv"
    localrule: True
    conda:
        "../envs/weights.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=120,
        downloads=1,
    params:
        model=weights_params,
    script:
        "../scripts/weights.py"
