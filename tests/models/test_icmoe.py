"""IC-MoE: registry, paper parameter counts (meta device), trainable split,
PPAV, SgCL, SAM checkpoint mapping, ONNX parity. Tests run a tiny config."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from qtseg import models
from qtseg.models.icmoe import ICMoEConfig, build_icmoe, icmoe_loss, sgcl_terms
from qtseg.models.icmoe.ppav import (
    candidate_scores,
    fuse,
    hard_masks,
    ppav_inference,
    pseudo_ground_truth,
    select_balanced,
    select_best,
)
from qtseg.models.icmoe.sam_weights import SamCheckpointError, load_sam_weights
from tests.models.conftest import onnx_vs_torch

pytestmark = pytest.mark.usefixtures("one_thread")


PAPER_PARAMS = 279.06e6  # Table 6
PAPER_TRAINABLE = 33.23e6

TINY = {
    "img_size": 64,
    "patch_size": 8,
    "embed_dim": 32,
    "depth": 4,
    "num_heads": 2,
    "window_size": 3,  # 8x8 grid -> padded to 9x9: exercises window padding
    "global_attn_indexes": (1, 3),
    "prompt_dim": 32,
    "decoder_heads": 2,
    "decoder_mlp_dim": 64,
    "sgcl_dim": 16,
}


def _counts(model: torch.nn.Module) -> tuple[int, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable


def _tiny(seed: int = 0, **over: object) -> torch.nn.Module:
    torch.manual_seed(seed)
    return models.create("icmoe", **{**TINY, **over})


# ---------------------------------------------------------------- paper sizes


def test_full_size_counts_match_paper_at_256() -> None:
    # The paper's Table 6 is measured on BUSI (256x256 input).
    with torch.device("meta"):
        model = build_icmoe(ICMoEConfig(img_size=256))
    total, trainable = _counts(model)
    assert abs(total / PAPER_PARAMS - 1) < 0.03, total
    assert abs(trainable / PAPER_TRAINABLE - 1) < 0.03, trainable


def test_full_size_at_1024_differs_only_by_position_tables() -> None:
    with torch.device("meta"):
        big = build_icmoe(ICMoEConfig(img_size=1024))
        small = build_icmoe(ICMoEConfig(img_size=256))
    (t_big, tr_big), (t_small, tr_small) = _counts(big), _counts(small)
    c, hd, n_global = 768, 64, 4
    per_expert = (64 * 64 - 16 * 16) * c + n_global * 2 * ((2 * 64 - 1) - (2 * 16 - 1)) * hd
    assert t_big - t_small == 3 * per_expert
    assert (
        tr_big - tr_small == 2 * ((2 * 64 - 1) - (2 * 16 - 1)) * hd
    )  # semantic block 11 is global
    assert abs(tr_big / PAPER_TRAINABLE - 1) < 0.03


def test_registered_defaults_are_sam_vit_b() -> None:
    assert "icmoe" in models.list_models()
    cfg = models.make_config("icmoe", num_classes=2)
    assert (cfg.embed_dim, cfg.depth, cfg.num_heads, cfg.img_size) == (768, 12, 12, (1024, 1024))
    # The trainer passes img_size as (h, w); JSON configs give lists.
    assert models.make_config("icmoe", img_size=[256, 256]).img_size == (256, 256)
    for bad in ({"img_size": (256, 512)}, {"img_size": 250}, {"num_classes": 1}):
        with pytest.raises(ValueError):
            models.make_config("icmoe", **bad)


# ------------------------------------------------------------ trainable split


def test_trainable_split_is_expressed_by_requires_grad() -> None:
    model = _tiny()
    experts = model.experts
    assert not any(p.requires_grad for p in experts["basic"].image_encoder.parameters())
    sem = experts["semantic"].image_encoder
    sem_trainable = {n for n, p in sem.named_parameters() if p.requires_grad}
    last_two = {n for n, _ in sem.named_parameters() if n.startswith(("blocks.2.", "blocks.3."))}
    assert sem_trainable == last_two
    ada = {n for n, p in experts["adaptive"].image_encoder.named_parameters() if p.requires_grad}
    assert ada and all("_adapter." in n for n in ada)
    assert len(ada) == 4 * 2 * 4  # 4 blocks x 2 adapters x (fc1, fc2) x (weight, bias)
    for name in ("basic", "semantic", "adaptive"):
        assert all(p.requires_grad for p in experts[name].mask_decoder.parameters())
        assert not any(p.requires_grad for p in experts[name].prompt_encoder.parameters())


# ---------------------------------------------------------------------- PPAV


def test_pseudo_ground_truth_is_majority_vote() -> None:
    m = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 1.0, 1.0]])
    masks = m.reshape(1, 3, 1, 1, 4)
    assert pseudo_ground_truth(masks).flatten().tolist() == [1.0, 0.0, 1.0, 0.0]


def test_scores_pick_the_candidate_closest_to_reference() -> None:
    ref = torch.tensor([1.0, 1.0, 0.0, 0.0]).reshape(1, 1, 1, 4)
    cands = torch.tensor(
        [[0.0, 0.0, 1.0, 1.0], [1.0, 1.0, 0.0, 1.0], [1.0, 1.0, 0.0, 0.0]]
    ).reshape(1, 3, 1, 1, 4)
    scores = candidate_scores(cands, ref)
    assert torch.allclose(scores, torch.tensor([[0.0, 0.75, 1.0]]))
    assert select_best(scores).tolist() == [[0.0, 0.0, 1.0]]


def test_balanced_selection_caps_each_candidate() -> None:
    scores = torch.tensor([[0.9, 0.5, 0.1]] * 6)
    choice = select_balanced(scores)
    assert choice.sum(0).tolist() == [2.0, 2.0, 2.0]
    assert choice[:2, 0].tolist() == [1.0, 1.0]  # first samples keep their favourite
    assert select_balanced(torch.tensor([[0.1, 0.9, 0.2]] * 2), capacity=2).argmax(1).tolist() == [
        1,
        1,
    ]
    with pytest.raises(ValueError):
        select_balanced(scores, capacity=1)


def test_fusion_and_softmax_give_back_the_fused_probability() -> None:
    torch.manual_seed(0)
    probs = torch.rand(2, 3, 1, 5, 5)
    alpha = 0.5
    fused = ppav_inference(probs, alpha, binary=True)
    mean = probs.mean(1)
    cands = torch.stack([probs[:, 0], probs[:, 1], mean], 1)
    masks = hard_masks(cands, binary=True)
    best = candidate_scores(masks, pseudo_ground_truth(masks)).argmax(1)
    for i in range(2):
        expected = (probs[i, 2] + alpha * cands[i, best[i]]) / (1 + alpha)
        assert torch.allclose(fused[i], expected)
    w = torch.eye(3)[[0, 2]]
    assert torch.allclose(fuse(probs[:, 2], cands, w, 1.0)[1], (probs[1, 2] + mean[1]) / 2)


def test_multiclass_hard_masks_are_one_hot() -> None:
    p = torch.softmax(torch.randn(2, 4, 3, 3), dim=1)
    m = hard_masks(p, binary=False)
    assert torch.equal(m.sum(1), torch.ones(2, 3, 3))
    assert torch.equal(m.argmax(1), p.argmax(1))


# -------------------------------------------------------------- model forward


def test_forward_shape_batch_free_and_per_sample() -> None:
    model = _tiny().eval()
    x = torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        out = model(x)
        single = model(x[1:2])
    assert out.shape == (3, 2, 64, 64)
    assert torch.allclose(out[1:2], single, atol=1e-5)  # inference PPAV never mixes samples


def test_binary_logits_softmax_to_fused_probability() -> None:
    model = _tiny().eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        probs, _ = model.expert_outputs(x)
        fused = ppav_inference(probs, model.alpha, binary=True)
        out = model(x)
    assert torch.allclose(torch.softmax(out, 1)[:, 1:], fused.clamp(1e-6, 1 - 1e-6), atol=1e-5)


def test_multiclass_forward() -> None:
    model = _tiny(num_classes=5).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 64, 64))
    assert out.shape == (1, 5, 64, 64)
    assert torch.allclose(out.exp().sum(1), torch.ones(1, 64, 64), atol=1e-4)


def test_rejects_wrong_input_size() -> None:
    with pytest.raises(ValueError):
        _tiny()(torch.rand(1, 3, 32, 32))


# ------------------------------------------------------------ training + SgCL


def test_training_step_reaches_exactly_the_trainable_parameters() -> None:
    model = _tiny().train()
    x = torch.rand(3, 3, 64, 64)
    target = (torch.rand(3, 64, 64) > 0.6).long()
    out = model.forward_train(x, target)
    assert out.choice.sum(0).tolist() == [1.0, 1.0, 1.0]  # balanced over a batch of 3
    terms = icmoe_loss(out, target, model.sgcl)
    assert set(terms) == {"ce", "dice", "sgcl", "loss"} and torch.isfinite(terms["loss"])
    terms["loss"].backward()
    frozen_with_grad = [
        n for n, p in model.named_parameters() if not p.requires_grad and p.grad is not None
    ]
    assert not frozen_with_grad
    must_learn = [
        "experts.semantic.image_encoder.blocks.3.mlp.lin2.weight",
        "experts.adaptive.image_encoder.blocks.0.attn_adapter.fc2.weight",
        "experts.adaptive.image_encoder.blocks.3.mlp_adapter.fc2.weight",
        "experts.basic.mask_decoder.output_hypernetworks_mlps.0.layers.2.weight",
        "sgcl.w1.weight",
        "sgcl.w2.weight",
        "sgcl.w3.weight",
    ]
    params = dict(model.named_parameters())
    for name in must_learn:
        assert params[name].grad is not None and params[name].grad.abs().sum() > 0, name


def test_sgcl_terms_behave_as_defined() -> None:
    torch.manual_seed(0)
    proj = models.create("icmoe", **TINY).sgcl
    same = [torch.randn(2, 32, 4, 4)] * 4
    fg = [torch.randn(2, 32, 4, 4) for _ in range(4)]
    bg = [torch.randn(2, 32, 4, 4) for _ in range(4)]
    t = sgcl_terms(proj, same, fg, bg)
    assert t.l2 == 0 and t.l3 == 0 and t.loss == 0 and t.l1 > 0
    img = [torch.randn(2, 32, 4, 4) for _ in range(4)]
    t = sgcl_terms(proj, img, fg, bg)
    assert torch.isclose(t.loss, t.l2 / (t.l1 + t.l3 + 1e-6))
    assert 0 < t.l2 <= 2 and 0 < t.l3 <= 2


# ------------------------------------------------------- SAM checkpoint mapping


def _fake_sam_state(cfg: dict, img_size: int) -> dict[str, torch.Tensor]:
    """A SAM-format state dict written from the published key layout, sized by ``cfg``."""
    g = torch.Generator().manual_seed(1)

    def r(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g)

    c, p, heads = cfg["embed_dim"], cfg["prompt_dim"], cfg["num_heads"]
    grid, hd, mlp, win = img_size // cfg["patch_size"], c // heads, 4 * c, cfg["window_size"]
    sd = {
        "image_encoder.pos_embed": r(1, grid, grid, c),
        "image_encoder.patch_embed.proj.weight": r(c, 3, cfg["patch_size"], cfg["patch_size"]),
        "image_encoder.patch_embed.proj.bias": r(c),
    }
    for i in range(cfg["depth"]):
        side = grid if i in cfg["global_attn_indexes"] else win
        b = f"image_encoder.blocks.{i}."
        shapes = {
            "norm1.weight": (c,),
            "norm1.bias": (c,),
            "attn.qkv.weight": (3 * c, c),
            "attn.qkv.bias": (3 * c,),
            "attn.proj.weight": (c, c),
            "attn.proj.bias": (c,),
            "attn.rel_pos_h": (2 * side - 1, hd),
            "attn.rel_pos_w": (2 * side - 1, hd),
            "norm2.weight": (c,),
            "norm2.bias": (c,),
            "mlp.lin1.weight": (mlp, c),
            "mlp.lin1.bias": (mlp,),
            "mlp.lin2.weight": (c, mlp),
            "mlp.lin2.bias": (c,),
        }
        sd.update({b + k: r(*s) for k, s in shapes.items()})
    sd.update(
        {
            "image_encoder.neck.0.weight": r(p, c, 1, 1),
            "image_encoder.neck.1.weight": r(p),
            "image_encoder.neck.1.bias": r(p),
            "image_encoder.neck.2.weight": r(p, p, 3, 3),
            "image_encoder.neck.3.weight": r(p),
            "image_encoder.neck.3.bias": r(p),
            "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix": r(2, p // 2),
            "prompt_encoder.not_a_point_embed.weight": r(1, p),
            "prompt_encoder.no_mask_embed.weight": r(1, p),
            "prompt_encoder.mask_downscaling.0.weight": r(4, 1, 2, 2),
            "prompt_encoder.mask_downscaling.0.bias": r(4),
            "prompt_encoder.mask_downscaling.1.weight": r(4),
            "prompt_encoder.mask_downscaling.1.bias": r(4),
            "prompt_encoder.mask_downscaling.3.weight": r(16, 4, 2, 2),
            "prompt_encoder.mask_downscaling.3.bias": r(16),
            "prompt_encoder.mask_downscaling.4.weight": r(16),
            "prompt_encoder.mask_downscaling.4.bias": r(16),
            "prompt_encoder.mask_downscaling.6.weight": r(p, 16, 1, 1),
            "prompt_encoder.mask_downscaling.6.bias": r(p),
        }
    )
    sd.update({f"prompt_encoder.point_embeddings.{i}.weight": r(1, p) for i in range(4)})

    def attn(prefix: str, inner: int) -> None:
        for n in ("q_proj", "k_proj", "v_proj"):
            sd[f"{prefix}.{n}.weight"], sd[f"{prefix}.{n}.bias"] = r(inner, p), r(inner)
        sd[f"{prefix}.out_proj.weight"], sd[f"{prefix}.out_proj.bias"] = r(p, inner), r(p)

    def norm(prefix: str) -> None:
        sd[f"{prefix}.weight"], sd[f"{prefix}.bias"] = r(p), r(p)

    t = "mask_decoder.transformer"
    for layer in range(2):
        lp = f"{t}.layers.{layer}"
        attn(f"{lp}.self_attn", p)
        attn(f"{lp}.cross_attn_token_to_image", p // 2)
        attn(f"{lp}.cross_attn_image_to_token", p // 2)
        for k in range(1, 5):
            norm(f"{lp}.norm{k}")
        hidden = cfg["decoder_mlp_dim"]
        sd[f"{lp}.mlp.lin1.weight"], sd[f"{lp}.mlp.lin1.bias"] = r(hidden, p), r(hidden)
        sd[f"{lp}.mlp.lin2.weight"], sd[f"{lp}.mlp.lin2.bias"] = r(p, hidden), r(p)
    attn(f"{t}.final_attn_token_to_image", p // 2)
    norm(f"{t}.norm_final_attn")
    d = "mask_decoder"
    sd.update(
        {
            f"{d}.iou_token.weight": r(1, p),
            f"{d}.mask_tokens.weight": r(4, p),
            f"{d}.output_upscaling.0.weight": r(p, p // 4, 2, 2),
            f"{d}.output_upscaling.0.bias": r(p // 4),
            f"{d}.output_upscaling.1.weight": r(p // 4),
            f"{d}.output_upscaling.1.bias": r(p // 4),
            f"{d}.output_upscaling.3.weight": r(p // 4, p // 8, 2, 2),
            f"{d}.output_upscaling.3.bias": r(p // 8),
        }
    )
    for head, outs in [(f"output_hypernetworks_mlps.{i}", p // 8) for i in range(4)] + [
        ("iou_prediction_head", 4)
    ]:
        for k, (o, i) in enumerate([(p, p), (p, p), (outs, p)]):
            sd[f"{d}.{head}.layers.{k}.weight"], sd[f"{d}.{head}.layers.{k}.bias"] = r(o, i), r(o)
    return sd


def test_sam_state_dict_loads_every_expected_tensor() -> None:
    model = _tiny()
    sam = _fake_sam_state(TINY, TINY["img_size"])
    report = load_sam_weights(model, sam)
    assert len(report.loaded) == 3 * len(sam) and not report.resized and not report.ignored
    state = model.state_dict()
    for key, tensor in sam.items():
        for expert in ("basic", "semantic", "adaptive"):
            assert torch.equal(state[f"experts.{expert}.{key}"], tensor), (expert, key)
    sam_part = [
        k
        for k in state
        if k.split(".", 2)[-1].startswith(("image_encoder.", "prompt_encoder.", "mask_decoder."))
    ]
    assert set(report.new) == set(state) - set(report.loaded)
    assert all("_adapter." in k or k.startswith("sgcl.") for k in report.new)
    assert len(sam_part) == 3 * len(sam) + len([k for k in report.new if "_adapter." in k])


def test_sam_weights_make_all_experts_agree_before_training() -> None:
    model = _tiny()
    load_sam_weights(model, _fake_sam_state(TINY, TINY["img_size"]))
    with torch.no_grad():
        probs, _ = model.expert_outputs(torch.rand(2, 3, 64, 64))
    # Same SAM weights everywhere and zero-initialised adapters -> identical experts.
    assert torch.allclose(probs[:, 0], probs[:, 2], atol=1e-5)
    assert torch.allclose(probs[:, 1], probs[:, 2], atol=1e-5)


def test_sam_checkpoint_of_other_size_is_resized() -> None:
    model = _tiny()
    sam = _fake_sam_state(TINY, 128)  # 16x16 grid checkpoint into an 8x8 model
    sam["image_encoder.pos_embed"] = torch.full((1, 16, 16, 32), 0.25)
    report = load_sam_weights(model, sam)
    state = model.state_dict()
    pos = state["experts.semantic.image_encoder.pos_embed"]
    assert pos.shape == (1, 8, 8, 32) and torch.allclose(pos, torch.full_like(pos, 0.25))
    assert state["experts.basic.image_encoder.blocks.1.attn.rel_pos_h"].shape == (15, 16)
    assert state["experts.basic.image_encoder.blocks.0.attn.rel_pos_h"].shape == (
        5,
        16,
    )  # window block
    assert len(report.resized) == 3 * (1 + 2 * len(TINY["global_attn_indexes"]))


def test_sam_checkpoint_problems_are_reported() -> None:
    model = _tiny()
    sam = _fake_sam_state(TINY, TINY["img_size"])
    bad = dict(sam)
    bad["image_encoder.blocks.0.attn.qkv.weight"] = torch.zeros(5, 5)
    with pytest.raises(SamCheckpointError):
        load_sam_weights(model, bad)
    for key in (
        "mask_decoder.iou_token.weight",
        "mask_decoder.output_hypernetworks_mlps.0.layers.0.bias",
    ):
        missing = dict(sam)
        del missing[key]
        with pytest.raises(SamCheckpointError):
            load_sam_weights(model, missing)
    assert load_sam_weights(_tiny(), {"model": sam}).loaded  # wrapped checkpoints unwrap


def test_sam_weights_fill_extra_class_tokens() -> None:
    model = _tiny(num_classes=6)
    report = load_sam_weights(model, _fake_sam_state(TINY, TINY["img_size"]))
    assert "experts.basic.mask_decoder.mask_tokens.weight" in report.partial
    assert any("output_hypernetworks_mlps.5." in k for k in report.new)


# ------------------------------------------------------------------------ ONNX


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore:Constant folding")
def test_onnx_export_matches_torch(tmp_path) -> None:
    model = _tiny().eval()
    torch.manual_seed(1)
    x = torch.rand(2, 3, 64, 64)
    ref, got, ops = onnx_vs_torch(model, tmp_path / "icmoe.onnx", x)
    assert not ops & {"Loop", "If", "Scan"}
    assert got.shape == ref.shape == (2, 2, 64, 64)
    assert np.abs(got - ref).max() < 1e-4
    assert math.isfinite(float(np.abs(got).max()))
