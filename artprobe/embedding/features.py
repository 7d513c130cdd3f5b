"""Which of a timm model's features become the embedding (config ``models[].features``).

Each choice is computed with timm's own APIs, so it means the same for every architecture:

``pooled`` (default)
    ``model(x)`` with the classifier removed (``num_classes=0``), i.e.
    ``forward_head(forward_features(x), pre_logits=True)``: the model's own pooling and head
    norm. The model is used unchanged, so these embeddings are bit-identical to before.
``cls``
    ``forward_features(x)[:, 0]``: the class token after the model's final norm (DINOv2's
    ``x_norm_clstoken``). Needs a class token (ViT, DeiT, EVA, BEiT …; not ConvNeXt/ResNet).
``mean_tokens``
    The mean of the patch tokens of ``forward_features(x)`` (the ``num_prefix_tokens`` class
    and register tokens left out); for a CNN the mean of its last feature map over positions
    (global average pooling without the head's norm).
``last<k>_cls``, ``last<k>_cls_mean``
    The class tokens of the last ``k`` blocks, each after the final norm
    (``forward_intermediates(indices=k, norm=True, return_prefix_tokens=True)``),
    concatenated: ``k * D`` wide; ``_mean`` appends the mean patch token of the last block:
    ``(k + 1) * D``, DINOv2's linear-evaluation features (``n_last_blocks=k, avgpool=True``).

Models whose forward_features normalise after pooling (``fc_norm``, e.g. ``global_pool='avg'``
ViTs) have no final token norm, so their ``cls``/``mean_tokens`` are un-normalised tokens.
Torch is imported lazily: :mod:`artprobe.stages.merge_embeddings` imports this package torch-free.
"""

from __future__ import annotations

import functools
import inspect
import re
from dataclasses import dataclass

#: what the config schema accepts (schemas/config.schema.yaml, ``models[].features``)
FEATURES_PATTERN = r"^(pooled|cls|mean_tokens|last[1-9][0-9]*_cls(_mean)?)$"


@dataclass(frozen=True)
class FeatureSpec:
    """A parsed ``features`` value: ``kind`` is pooled, cls, mean_tokens or last_blocks."""

    name: str
    kind: str
    k: int = 0
    mean_patch: bool = False


def parse_features(name: str) -> FeatureSpec:
    """The :class:`FeatureSpec` of a ``features`` value; ValueError naming the choices."""
    if not isinstance(name, str) or not re.fullmatch(FEATURES_PATTERN, name):
        raise ValueError(
            f"features must be pooled, cls, mean_tokens, last<k>_cls or last<k>_cls_mean "
            f"(k >= 1, e.g. last4_cls_mean), got {name!r}"
        )
    m = re.fullmatch(r"last(\d+)_cls(_mean)?", name)
    if m:
        return FeatureSpec(name, "last_blocks", int(m.group(1)), bool(m.group(2)))
    return FeatureSpec(name, name)


def _depth(model) -> int | None:
    blocks = getattr(model, "blocks", None)
    return len(blocks) if blocks is not None and hasattr(blocks, "__len__") else None


def _has_class_token(model) -> bool:
    return (
        getattr(model, "cls_token", None) is not None
        and getattr(model, "num_prefix_tokens", 0) >= 1
    )


def _has_block_tokens(model) -> bool:
    """forward_intermediates that can hand back the prefix (class) tokens of each block."""
    fi = getattr(model, "forward_intermediates", None)
    return fi is not None and "return_prefix_tokens" in inspect.signature(fi).parameters


def supported_features(model) -> list[str]:
    """The ``features`` values ``model`` supports, for error messages."""
    out = ["pooled", "mean_tokens"]
    if _has_class_token(model):
        out.append("cls")
        depth = _depth(model)
        if _has_block_tokens(model) and depth:
            out += [f"last<k>_cls, last<k>_cls_mean (1 <= k <= {depth})"]
    return out


def check_features(model, spec: FeatureSpec, model_name: str) -> None:
    """ValueError naming the model and the choices that work, if ``spec`` does not fit it."""
    ok = spec.kind in ("pooled", "mean_tokens")
    if spec.kind == "cls":
        ok = _has_class_token(model)
    elif spec.kind == "last_blocks":
        depth = _depth(model)
        ok = (
            _has_class_token(model)
            and _has_block_tokens(model)
            and depth is not None
            and spec.k <= depth
        )
    if not ok:
        raise ValueError(
            f"model {model_name!r} ({type(model).__name__}) cannot give features={spec.name!r}: "
            f"it works with {', '.join(supported_features(model))}"
        )


def feature_model(model, features: str, model_name: str = "model"):
    """``model`` itself for ``pooled``; else a module whose forward returns ``features``
    ([batch, dim]). The module shares the model's weights (no copies)."""
    spec = parse_features(features)
    check_features(model, spec, model_name)
    if spec.kind == "pooled":
        return model
    return _extractor_class()(model, spec)


@functools.cache
def _extractor_class():
    import torch

    class FeatureExtractor(torch.nn.Module):
        """The chosen features of a timm model (see the module docstring)."""

        def __init__(self, model, spec: FeatureSpec):
            super().__init__()
            self.model, self.spec = model, spec
            self.prefix = int(getattr(model, "num_prefix_tokens", 0) or 0)
            self.fmt = str(getattr(model, "output_fmt", "NCHW"))

        def forward(self, x):
            if self.spec.kind == "last_blocks":
                return self._last_blocks(x)
            feats = self.model.forward_features(x)
            if self.spec.kind == "cls":
                return feats[:, 0]
            return self._mean_tokens(feats)

        def _mean_tokens(self, feats):
            if feats.ndim == 3:  # NLC tokens
                return feats[:, self.prefix :].mean(1)
            if feats.ndim == 4:  # a feature map
                return feats.mean((1, 2) if self.fmt == "NHWC" else (2, 3))
            raise RuntimeError(
                f"forward_features gave shape {tuple(feats.shape)}: not tokens or a map"
            )

        def _last_blocks(self, x):
            out = self.model.forward_intermediates(
                x,
                indices=self.spec.k,
                norm=True,
                return_prefix_tokens=True,
                output_fmt="NLC",
                intermediates_only=True,
            )
            parts = [prefix[:, 0] for _, prefix in out]
            if self.spec.mean_patch:
                parts.append(out[-1][0].mean(1))
            return torch.cat(parts, dim=1)

    return FeatureExtractor
