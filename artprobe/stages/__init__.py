"""The workflow's stages: one module per rule, named like it (``rules/*.smk``'s ``shard``
rule runs :mod:`artprobe.stages.shard`, its script is ``scripts/shard.py``). Each holds its
rule's entry point and only its stage's work; what several stages share lives beside this
package (:mod:`artprobe.common`, :mod:`artprobe.sources`, :mod:`artprobe.embedding`,
:mod:`artprobe.pretrained`, :mod:`artprobe.probes`, :mod:`artprobe.report`)."""
