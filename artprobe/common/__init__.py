"""What every stage uses: atomic files and Parquet metadata (:mod:`.io`), a job's log
(:mod:`.logs`), disk space (:mod:`.disk`), the device (:mod:`.device`), out of GPU memory
(:mod:`.oom`), the hub client's failures (:mod:`.hub`), robust image decoding
(:mod:`.images`) and timm's names (:mod:`.timm_names`)."""
