"""The embed stage's library: a timm model over image shards, resumably.

The stage, :mod:`artprobe.stages.embed` (the ``embed`` rule), strings these modules together:
``embed_shard(shard, out, model: ModelSpec, runtime: EmbedRuntime)`` turns
``shards/<shard>.parquet`` (``row_id``, ``image`` bytes, targets) into
``embeddings/<model>/<shard>.parquet`` (``row_id``, ``embedding``, ``error``):

* **Speed.** Decoding and the PIL part of the model's own eval transform
  (``timm.data.create_transform(**resolve_model_data_config(model), is_training=False)``)
  run in DataLoader worker processes, which hand over ``uint8`` crops; ``ToTensor`` and
  ``Normalize`` are applied to the whole batch on the device (the same float ops, so
  bit-identical on CPU). The forward pass is batched under ``torch.inference_mode()``;
  channels_last; on CUDA with bf16 autocast (``precision="auto"``), pinned memory,
  non-blocking copies, and the results of batch k read back while batch k+1 runs.
* **Fast decode** (``decode="fast"``, the default): JPEGs are decoded at 1/2, 1/4 or 1/8
  DCT scale (``PIL.Image.draft``) while their short side stays >= the model's resize target
  (``DRAFT_MARGIN`` = 1.0); ``"exact"`` decodes at full resolution; ``"nvjpeg"`` decodes
  JPEGs on the GPU (``torchvision.io.decode_jpeg``) and resizes them there, falling back to
  PIL for other formats and for files nvjpeg refuses.
* **Bad images** never stop the job: :mod:`artprobe.common.images` turns them into a short reason,
  stored in ``error`` with a null ``embedding``.
* **Resumable.** Every ``checkpoint_every`` batches the rows done so far are saved as a
  checkpoint file in the checkpoint dir ``<out dir>/.checkpoints/<out stem>/`` (Arrow IPC,
  written atomically, beside a ``key.json`` holding everything that could change a result:
  model, weights fingerprint, data config, decode, dtype, device type, library versions,
  batch size, shard identity). A rerun with the same key resumes after the last checkpoint
  with the same batch boundaries, so its output is bit-identical to an uninterrupted run on
  CPU; checkpoints under another key, and unreadable checkpoint files, are discarded. The
  dir is removed once the output is written (atomically).

* **Cheap to start.** A pretrained model is built on the meta device and its weights assigned
  (memory-mapped), not copied over a random init (:mod:`.weight_loading`); the shard's images are
  streamed one row group at a time, so a job's memory does not grow with its shard. What the
  job paid before its first image is in the provenance (``fixed_costs``).

Modules, one job each: :mod:`.model` (load, fingerprint, dtype), :mod:`.weight_loading` (meta-device
build, weights hash), :mod:`.features` (which of the model's features form the embedding),
:mod:`.preprocess` (the transform split into host and device stages), :mod:`.loader`
(dataset, streamed pieces, DataLoader), :mod:`.nvjpeg` (GPU JPEG decoding), :mod:`.runner`
(the model on device batches), :mod:`.rows` (the output table and the rows between
checkpoints), :mod:`.checkpoints` (the checkpoint store), :mod:`.gpu_slots` (a local job's own GPU).
"""

from artprobe.embedding.checkpoints import CHECKPOINT_DIR, Checkpoints
from artprobe.embedding.features import FEATURES_PATTERN, feature_model, parse_features
from artprobe.embedding.loader import (
    PIECE,
    ShardImages,
    collate,
    merge_pieces,
    piece_loader,
    plan_pieces,
)
from artprobe.embedding.model import (
    PRECISIONS,
    load_model,
    n_cores,
    resolve_dtype,
    weights_fingerprint,
)
from artprobe.embedding.nvjpeg import check_nvjpeg, decode_jpeg_batch
from artprobe.embedding.preprocess import DECODE_MODES, DRAFT_MARGIN, Preprocess, build_preprocess
from artprobe.embedding.rows import embedding_table
from artprobe.embedding.runner import ModelRunner, place_model
from artprobe.settings import EmbedRuntime, ModelSpec

__all__ = [
    "CHECKPOINT_DIR",
    "DECODE_MODES",
    "DRAFT_MARGIN",
    "FEATURES_PATTERN",
    "PIECE",
    "PRECISIONS",
    "Checkpoints",
    "EmbedRuntime",
    "ModelRunner",
    "ModelSpec",
    "Preprocess",
    "ShardImages",
    "build_preprocess",
    "check_nvjpeg",
    "collate",
    "decode_jpeg_batch",
    "embedding_table",
    "feature_model",
    "load_model",
    "merge_pieces",
    "n_cores",
    "parse_features",
    "piece_loader",
    "place_model",
    "plan_pieces",
    "resolve_dtype",
    "weights_fingerprint",
]
