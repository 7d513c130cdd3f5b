# Download stage (hub sources only): the file list at the pinned revision (checkpoint),
# then one job per file into the hub cache. Local rules: on SLURM they run on the login
# node, so compute nodes need no internet. `downloads` (profiles) bounds the parallelism.


checkpoint download_list:
    output:
        "results/{dataset}/download/files.json",
    log:
        "results/{dataset}/logs/download/files.log",
    benchmark:
        "results/{dataset}/benchmarks/download/files.tsv"
    localrule: True
    conda:
        "../envs/download.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        hub=hub_params,
    script:
        "../scripts/download_list.py"


rule download:
    input:
        "results/{dataset}/download/files.json",
    output:
        "results/{dataset}/download/{file}.json",
    log:
        "results/{dataset}/logs/download/{file}.log",
    benchmark:
        "results/{dataset}/benchmarks/download/{file}.tsv"
    localrule: True
    conda:
        "../envs/download.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=120,
        downloads=1,
    script:
        "../scripts/download.py"
