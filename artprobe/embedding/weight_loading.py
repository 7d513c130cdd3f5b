"""Build a pretrained timm model without paying for the random initialisation its weights
overwrite: the model is created on the meta device, then timm's own pretrained loading
(``load_pretrained``: the hub or a local ``file``, the model's ``filter_fn``, classifier and
input-conv adaptation) fills it, assigning the loaded tensors instead of copying them into
initialised ones. Safetensors files are memory-mapped, so only the pages used are read.

Buffers that are not in a checkpoint (RoPE tables, relative position indices) are computed by
timm's ``init_non_persistent_buffers`` hooks. Whatever this cannot fill (a module without that
hook, a key the checkpoint lacks, a model with its own loader) falls back to the plain path,
so the model is always the one ``timm.create_model(..., pretrained=True)`` builds.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from pathlib import Path

log = logging.getLogger("artprobe.embedding")


def create_pretrained(timm_name: str, overlay: dict, timings: dict | None = None):
    """``timm.create_model(timm_name, pretrained=True, num_classes=0, **overlay)``, built on the
    meta device and assign-loaded (see the module doc). ``timings`` gets ``build_s``, ``load_s``."""
    import timm
    import torch

    timings = {} if timings is None else timings
    t0 = time.perf_counter()
    try:
        with _deferred_load() as calls, torch.device("meta"), _skip_meta_init_mode():
            model = timm.create_model(timm_name, pretrained=True, num_classes=0, **overlay)
    except (RuntimeError, NotImplementedError, ValueError) as exc:  # e.g. .item() on a meta tensor
        log.info("%s: meta-device build failed (%s)", timm_name, exc)
        model, calls = None, []
    timings["build_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ok = len(calls) == 1 and _assign_load(model, calls[0])
    timings["load_s"] = time.perf_counter() - t0
    if ok:
        return model
    log.warning("%s: cannot be built on the meta device; building it with a random init", timm_name)
    t0 = time.perf_counter()
    model = timm.create_model(timm_name, pretrained=True, num_classes=0, **overlay)
    timings["build_s"] += time.perf_counter() - t0
    return model


#: in-place ops that weight initialisers run; on a meta tensor they compute nothing, yet
#: their meta kernels cost ~1.5 s for EVA-02-L, so :class:`_SkipMetaInit` skips them
_INIT_OPS = frozenset(
    "uniform_ normal_ fill_ zero_ erfinv_ mul_ add_ sub_ div_ clamp_ clamp_min_ clamp_max_ copy_ "
    "exp_ log_ sqrt_ pow_ neg_ abs_ random_ bernoulli_ exponential_ fmod_ addcmul_ addcdiv_ "
    "masked_fill_ index_fill_ lerp_ floor_ ceil_ round_ trunc_".split()
)


def _skip_meta_init_mode():
    from torch.overrides import TorchFunctionMode

    class SkipMetaInit(TorchFunctionMode):
        """Return a meta tensor unchanged from the shape-preserving in-place ops of
        :data:`_INIT_OPS` (initialisation: values a meta tensor does not have)."""

        def __torch_function__(self, func, types, args=(), kwargs=None):
            if (
                getattr(func, "__name__", "") in _INIT_OPS
                and args
                and getattr(args[0], "is_meta", False)
            ):
                return args[0]
            return func(*args, **(kwargs or {}))

    return SkipMetaInit()


@contextlib.contextmanager
def _deferred_load():
    """While active, timm's ``build_model_with_cfg`` records its ``load_pretrained`` call
    (model and arguments, the model's ``filter_fn`` among them) instead of running it."""
    from timm.models import _builder

    calls: list[tuple] = []
    real = _builder.load_pretrained

    def record(model, *args, **kwargs):
        calls.append((model, args, kwargs))

    _builder.load_pretrained = record
    try:
        yield calls
    finally:
        _builder.load_pretrained = real


def _assign_load(model, call) -> bool:
    """Run the recorded ``load_pretrained`` call on the meta model, assigning the tensors
    (cast to the dtypes the model declares), then compute the non-persistent buffers.
    False when some tensor is left on the meta device."""
    from timm.models import _builder

    recorded, args, kwargs = call
    if recorded is not model:
        return False  # wrapped (e.g. features_only): use the plain path
    dtypes = {k: v.dtype for k, v in model.state_dict().items()}
    own = type(model).load_state_dict

    def load(state_dict, strict=True, assign=False):
        cast = {
            k: v.to(dtypes[k]) if k in dtypes and v.dtype != dtypes[k] else v
            for k, v in state_dict.items()
        }
        return own(model, cast, strict=strict, assign=True)

    model.load_state_dict = load
    try:
        _builder.load_pretrained(model, *args, **kwargs)
    finally:
        del model.load_state_dict
    return _materialise_buffers(model)


def _materialise_buffers(model) -> bool:
    """Fill the buffers still on the meta device with what their module's
    ``init_non_persistent_buffers`` computes; False if a parameter or another buffer is left."""
    import torch

    if any(p.is_meta for p in model.parameters()):
        return False
    owners = []
    for module in model.modules():
        names = [n for n, b in module._buffers.items() if b is not None and b.is_meta]
        if not names:
            continue
        if not hasattr(module, "init_non_persistent_buffers"):
            return False
        for n in names:
            module._buffers[n] = torch.empty_like(module._buffers[n], device="cpu")
        owners.append(module)
    for module in owners:
        module.init_non_persistent_buffers()
    return not any(b.is_meta for b in model.buffers())


def weights_file(weights: str | None, marker: str | None) -> tuple[str | None, dict]:
    """(the weights file to load, its provenance): a local ``weights`` file, or the file a
    ``weights`` stage marker names (its repo, revision, commit, file and sha256, the hash
    checked again here: a memoised sha256 of the file, so it costs seconds once); (None, {})
    for timm's own pretrained path or random weights."""
    if weights is not None and marker is not None:
        raise ValueError("weights and weights_marker are exclusive: a local file or the hub's")
    if weights is not None:
        if not os.path.isfile(weights):
            raise FileNotFoundError(f"weights file {weights!r} does not exist")
        return weights, {"weights_file": str(weights), "weights_sha256": file_sha256(weights)}
    if marker is None:
        return None, {}
    from artprobe.common.io import read_json
    from artprobe.pretrained import WeightsError, marker_file

    m = read_json(marker)
    path = marker_file(marker)
    digest = file_sha256(path)
    if digest != m["sha256"]:
        raise WeightsError(
            f"models[{m['model']}]: {path} has sha256 {digest}, but the weights stage checked {m['sha256']} "
            f"({m['repo']}@{m['commit']}): the hub cache changed since; delete {marker} and rerun to fetch it again"
        )
    keys = {
        "repo": "weights_repo",
        "revision": "weights_revision",
        "commit": "weights_commit",
        "file": "weights_file",
    }
    return str(path), {**{v: m[k] for k, v in keys.items()}, "weights_sha256": digest}


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 24) -> str:
    """The sha256 of a file, remembered per (path, size, mtime, inode) in the user's cache
    (``$XDG_CACHE_HOME/artprobe/sha256``): hashing a 2.6 GB checkpoint takes seconds, in
    every embed job."""
    st = os.stat(path)
    ident = f"{os.path.realpath(path)}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"
    memo = _cache_dir() / (hashlib.sha1(ident.encode()).hexdigest() + ".json")
    with contextlib.suppress(OSError, ValueError, KeyError):
        saved = json.loads(memo.read_text())
        if saved["ident"] == ident:
            return saved["sha256"]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    digest = h.hexdigest()
    with contextlib.suppress(OSError):  # a cache that cannot be written only costs time
        from artprobe.common.io import write_json

        write_json(memo, {"ident": ident, "sha256": digest})
    return digest


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "artprobe" / "sha256"
