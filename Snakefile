# artprobe: which pretrained vision model represents art best?
# hub/local source -> (download) -> manifest -> shards -> embeddings (+ weights) -> fits -> report.
# README.md explains the stages, the config keys and the results tree.

from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/download.smk"
include: "rules/data.smk"
include: "rules/weights.smk"
include: "rules/embed.smk"
include: "rules/classify.smk"
include: "rules/fewshot.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        final_targets(),
        weights_targets(),  # also here: fetched with the data, and `--until weights` works
