"""artprobe.embedding.features: each ``models[].features`` choice against a hand computation
from the model's own layers, the errors for models that cannot give a choice, and the choice
through embed_shard (provenance; ``pooled`` bit-identical to the plain model)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from embed_helpers import TINY, assert_same_embeddings, embed, small_jpegs, write_shard

from artprobe.common.io import embedding_matrix, read_meta
from artprobe.embedding import load_model
from artprobe.embedding.features import FEATURES_PATTERN, FeatureSpec, feature_model, parse_features

ROOT = Path(__file__).resolve().parents[1]


def _timm(name: str, **kw):
    import timm

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return timm.create_model(name, pretrained=False, num_classes=0, **kw).eval()


@pytest.fixture(scope="module")
def vit():
    """A ViT-Ti/16 at 32 px (4 patches), random weights; 12 blocks, D = 192."""
    return _timm("vit_tiny_patch16_224", img_size=32)


def _block_tokens(model, x) -> list[torch.Tensor]:
    """Every block's tokens after the final norm, computed layer by layer."""
    h = model.norm_pre(model.patch_drop(model._pos_embed(model.patch_embed(x))))
    out = []
    for blk in model.blocks:
        h = blk(h)
        out.append(model.norm(h))
    return out


@torch.no_grad()
def test_vit_features_equal_hand_computations(vit):
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    tokens = _block_tokens(vit, x)
    last = tokens[-1]  # [3, 1 + 4, 192]
    want = {
        "cls": last[:, 0],
        "mean_tokens": last[:, 1:].mean(1),
        "last1_cls": last[:, 0],
        "last4_cls": torch.cat([t[:, 0] for t in tokens[-4:]], 1),
        "last4_cls_mean": torch.cat([t[:, 0] for t in tokens[-4:]] + [last[:, 1:].mean(1)], 1),
    }
    for name, ref in want.items():
        got = feature_model(vit, name, "vit_tiny")(x)
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5, msg=name)
    assert feature_model(vit, "last4_cls_mean")(x).shape == (3, 5 * 192)
    # DINOv2's interface gives the same class tokens
    dino = vit.get_intermediate_layers(x, 4, return_prefix_tokens=True, norm=True)
    torch.testing.assert_close(
        feature_model(vit, "last4_cls")(x), torch.cat([p[:, 0] for _, p in dino], 1)
    )


@torch.no_grad()
def test_pooled_is_the_model_itself(vit):
    assert feature_model(vit, "pooled") is vit
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(feature_model(vit, "pooled")(x), vit(x))


@torch.no_grad()
def test_register_tokens_are_left_out_of_the_patch_mean():
    model = _timm("vit_tiny_patch16_224", img_size=32, reg_tokens=4)  # 1 class + 4 register tokens
    assert model.num_prefix_tokens == 5
    x = torch.randn(2, 3, 32, 32)
    last = model.forward_features(x)  # [2, 5 + 4, 192]
    torch.testing.assert_close(feature_model(model, "mean_tokens")(x), last[:, 5:].mean(1))
    torch.testing.assert_close(feature_model(model, "cls")(x), last[:, 0])


@torch.no_grad()
def test_convnext_mean_tokens_is_the_map_mean_and_class_tokens_are_refused():
    model = _timm("convnext_atto")
    x = torch.randn(2, 3, 64, 64)
    fmap = model.forward_features(x)  # [2, 320, 2, 2]
    torch.testing.assert_close(feature_model(model, "mean_tokens")(x), fmap.mean((2, 3)))
    for choice in ("cls", "last4_cls_mean"):
        with pytest.raises(
            ValueError, match=rf"'convnext_atto'.*{choice}.*works with pooled, mean_tokens$"
        ):
            feature_model(model, choice, "convnext_atto")


def test_more_blocks_than_the_model_has_is_refused(vit):
    with pytest.raises(ValueError, match=r"last13_cls.*1 <= k <= 12"):
        feature_model(vit, "last13_cls", "vit_tiny")


@pytest.mark.parametrize("bad", ["", "CLS", "last0_cls", "last_cls", "last4", "mean", 4, None])
def test_bad_feature_names_are_refused(bad):
    with pytest.raises(ValueError, match="features must be pooled, cls, mean_tokens"):
        parse_features(bad)


def test_parse_features_and_the_schema_agree():
    assert parse_features("last4_cls_mean") == FeatureSpec("last4_cls_mean", "last_blocks", 4, True)
    assert parse_features("last2_cls").mean_patch is False and parse_features("cls").kind == "cls"
    schema = yaml.safe_load((ROOT / "schemas/config.schema.yaml").read_text())
    prop = schema["properties"]["models"]["items"]["properties"]["features"]
    assert prop["pattern"] == FEATURES_PATTERN and prop["default"] == "pooled"
    assert re.fullmatch(FEATURES_PATTERN, "last12_cls_mean") and not re.fullmatch(
        FEATURES_PATTERN, "last4_mean"
    )


def test_embed_shard_records_the_choice_and_pooled_is_unchanged(tmp_path):
    shard = write_shard(tmp_path / "s.parquet", small_jpegs(5, seed=4))
    kw = dict(TINY, batch_size=4, checkpoint_every=0)
    default = embed(shard, tmp_path / "default.parquet", **kw)
    embed(shard, tmp_path / "pooled.parquet", features="pooled", **kw)
    embed(shard, tmp_path / "dino.parquet", features="last2_cls_mean", **kw)
    assert_same_embeddings(
        pq.read_table(tmp_path / "default.parquet"), pq.read_table(tmp_path / "pooled.parquet")
    )
    assert read_meta(tmp_path / "default.parquet")["features"] == "pooled"
    meta = read_meta(tmp_path / "dino.parquet")
    assert (
        meta["features"] == "last2_cls_mean"
        and meta["embedding_dim"] == 3 * default["embedding_dim"]
    )
    model, _ = load_model("test_vit", False)
    dino = embedding_matrix(pq.read_table(tmp_path / "dino.parquet")["embedding"])
    assert np.isfinite(dino).all() and dino.shape == (5, 3 * model.num_features)
    with pytest.raises(ValueError, match="'convnext_atto'.*cannot give features='cls'"):
        embed(
            shard, tmp_path / "cnx.parquet", **{**kw, "timm_name": "convnext_atto"}, features="cls"
        )
    assert not (tmp_path / "cnx.parquet").exists()
