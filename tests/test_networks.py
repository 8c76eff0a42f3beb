"""Networks: MONAI's GRN, our MedNeXt (deep supervision, sizes, UpKern, nnU-Net adapter), the MONAI builders."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from monai.networks.blocks.mednext_block import MedNeXtBlock

from nnunet_diffrefine.errors import InputError
from nnunet_diffrefine.networks import (
    MEDNEXT_SIZES,
    MedNeXt,
    create_mednext,
    load_swin_encoder_weights,
    mednext_from_plans,
    residual_unet,
    resunet_from_plans,
    segresnet,
    segresnet_from_plans,
    swin_unetr,
    swinunetr_from_plans,
    upkern_load_weights,
)

NNUNET_STRIDES = [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2]]


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


def _n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _tiny(kernel_size: int = 3, deep_supervision: bool = False) -> MedNeXt:
    return create_mednext(
        "S", 4, 3, kernel_size=kernel_size, init_filters=4, deep_supervision=deep_supervision
    )


# --- GRN (MONAI's MedNeXtBlock) ------------------------------------------------------------------


def _block_by_hand(block: MedNeXtBlock, x: torch.Tensor) -> torch.Tensor:
    """MedNeXt block with GRN written out: dwconv -> norm -> expand -> GELU -> GRN -> compress -> + x."""
    h = F.conv3d(x, block.conv1.weight, block.conv1.bias, padding=block.conv1.padding, groups=x.shape[1])
    h = F.group_norm(h, h.shape[1], block.norm.weight, block.norm.bias, eps=block.norm.eps)
    h = F.gelu(F.conv3d(h, block.conv2.weight, block.conv2.bias))
    gamma = block.global_resp_gamma.flatten()
    beta = block.global_resp_beta.flatten()
    out = torch.empty_like(h)
    for b in range(h.shape[0]):
        g = torch.stack([torch.sqrt((h[b, c] ** 2).sum()) for c in range(h.shape[1])])  # G_c = ||X_c||_2
        n = g / (g.mean() + 1e-6)
        for c in range(h.shape[1]):
            out[b, c] = gamma[c] * (h[b, c] * n[c]) + beta[c] + h[b, c]
    w3 = block.conv3.weight.flatten(1)  # (C_out, C_exp)
    y = torch.einsum("oc,bczyx->bozyx", w3, out) + block.conv3.bias.view(1, -1, 1, 1, 1)
    return x + y


def test_monai_grn_matches_the_formula_and_starts_as_identity():
    block = MedNeXtBlock(4, 4, expansion_ratio=2, kernel_size=3, global_resp_norm=True).eval()
    assert block.global_resp_gamma.shape == (1, 8, 1, 1, 1)
    assert (
        torch.count_nonzero(block.global_resp_gamma) == 0 and torch.count_nonzero(block.global_resp_beta) == 0
    )
    x = torch.randn(2, 4, 6, 5, 7)
    with torch.no_grad():
        plain = MedNeXtBlock(4, 4, expansion_ratio=2, kernel_size=3, global_resp_norm=False).eval()
        plain.load_state_dict(
            {k: v for k, v in block.state_dict().items() if "global_resp" not in k}, strict=True
        )
        torch.testing.assert_close(block(x), plain(x))  # gamma = beta = 0: GRN is the identity
        torch.testing.assert_close(block(x), _block_by_hand(block, x), atol=1e-5, rtol=1e-5)
        block.global_resp_gamma.normal_()
        block.global_resp_beta.normal_()
        out = block(x)
        torch.testing.assert_close(out, _block_by_hand(block, x), atol=1e-5, rtol=1e-5)
        assert not torch.allclose(out, plain(x), atol=1e-3)


# --- MedNeXt -------------------------------------------------------------------------------------


def test_mednext_blocks_all_have_grn():
    model = _tiny()
    grn_blocks = [m for m in model.modules() if isinstance(m, MedNeXtBlock)]
    assert grn_blocks and all(m.global_resp_norm for m in grn_blocks)  # down and up blocks included
    assert not any(
        m.global_resp_norm
        for m in create_mednext("S", 4, 3, init_filters=4, global_resp_norm=False).modules()
        if isinstance(m, MedNeXtBlock)
    )


@pytest.mark.parametrize("training", [True, False])
def test_mednext_forward_shapes_with_and_without_deep_supervision(training):
    model = _tiny().train(training)
    x = torch.randn(1, 4, 32, 32, 32)
    with torch.set_grad_enabled(training):
        out = model(x)
        assert isinstance(out, torch.Tensor) and out.shape == (1, 3, 32, 32, 32)
        model.decoder.deep_supervision = True
        outs = model(x)
    assert isinstance(outs, list)
    assert [tuple(o.shape) for o in outs] == [(1, 3, 32 // f, 32 // f, 32 // f) for f in (1, 2, 4, 8)]
    if not training:
        torch.testing.assert_close(outs[0], out)  # the full-resolution head is the same with DS on or off


def test_mednext_checkpoints_load_with_deep_supervision_on_or_off():
    with_ds, without_ds = _tiny(deep_supervision=True), _tiny(deep_supervision=False)
    assert with_ds.decoder.deep_supervision is True and without_ds.decoder.deep_supervision is False
    without_ds.load_state_dict(with_ds.state_dict(), strict=True)
    with_ds.load_state_dict(without_ds.state_dict(), strict=True)
    assert len(with_ds.decoder.heads) == 4


def test_mednext_sizes_build_and_grow():
    assert set(MEDNEXT_SIZES) == {"S", "B", "M", "L"}
    counts = {size: _n_params(create_mednext(size, 4, 3)) for size in "SBML"}
    assert counts["S"] < counts["B"] < counts["M"] < counts["L"]
    # the published sizes (kernel 3): 5.6M, 10.5M, 17.6M, 61.8M
    for size, millions in {"S": 5.6, "B": 10.5, "M": 17.6, "L": 61.8}.items():
        assert abs(counts[size] / 1e6 - millions) < 0.2, (size, counts[size])
    with pytest.raises(ValueError, match="unknown MedNeXt size"):
        create_mednext("XL", 4, 3)


def test_mednext_small_and_base_run():
    x = torch.randn(1, 4, 32, 16, 16)
    with torch.no_grad():
        for size in "SB":
            assert create_mednext(size, 4, 3, init_filters=4).eval()(x).shape == (1, 3, 32, 16, 16)


def test_mednext_rejects_bad_inputs_and_arguments():
    model = _tiny()
    with pytest.raises(ValueError, match="divisible by 16"):
        model(torch.randn(1, 4, 24, 32, 32))
    with pytest.raises(ValueError, match="too small"):
        model(torch.randn(1, 4, 16, 16, 16))
    with pytest.raises(ValueError, match="odd"):
        MedNeXt(init_filters=4, kernel_size=4)
    with pytest.raises(ValueError, match="norm_type"):
        MedNeXt(init_filters=4, norm_type="layer")
    with pytest.raises(ValueError, match="blocks_up"):
        MedNeXt(init_filters=4, blocks_up=(2, 2, 2))


# --- UpKern --------------------------------------------------------------------------------------


def test_upkern_center_reproduces_the_kernel3_model_and_trilinear_loads():
    k3, k5 = _tiny(3).eval(), _tiny(5).eval()
    with torch.no_grad():  # non-zero GRN so that every tensor matters
        for name, p in k3.named_parameters():
            if "global_resp" in name:
                p.normal_(std=0.5)
    source = k3.state_dict()
    n_dw = sum(1 for k, v in source.items() if v.ndim == 5 and v.shape[-1] == 3)
    counts = upkern_load_weights(k5, source, mode="center")
    assert counts == {"copied": len(source) - n_dw, "upsampled": n_dw, "skipped": 0}
    x = torch.randn(1, 4, 32, 32, 16)
    with torch.no_grad():
        torch.testing.assert_close(k5(x), k3(x), atol=1e-5, rtol=1e-4)

    k5_tri = _tiny(5).eval()
    counts = upkern_load_weights(k5_tri, {**source, "extra.weight": torch.zeros(1)}, mode="trilinear")
    assert counts == {"copied": len(source) - n_dw, "upsampled": n_dw, "skipped": 1}
    w_center = k5.stem.weight  # equal-shape tensors are copied in both modes
    torch.testing.assert_close(k5_tri.stem.weight, w_center)
    key = "enc_stages.0.0.conv1.weight"
    tri, cen = k5_tri.state_dict()[key], k5.state_dict()[key]
    assert tri.shape == cen.shape == (4, 1, 5, 5, 5)
    assert not torch.allclose(tri, cen) and torch.count_nonzero(tri[..., 0, 0, 0]) > 0


def test_upkern_rejects_incompatible_state_dicts():
    source = _tiny(3).state_dict()
    missing = {k: v for k, v in source.items() if k != "bottleneck.0.conv2.weight"}
    with pytest.raises(ValueError, match="bottleneck.0.conv2.weight"):
        upkern_load_weights(_tiny(5), missing)
    wider = create_mednext("S", 4, 3, kernel_size=3, init_filters=8).state_dict()
    with pytest.raises(ValueError, match="stem.weight"):
        upkern_load_weights(_tiny(5), wider)
    with pytest.raises(ValueError, match="mode"):
        upkern_load_weights(_tiny(5), source, mode="nearest")


# --- nnU-Net adapter -----------------------------------------------------------------------------


def test_mednext_from_plans_checks_strides_and_arguments():
    model = mednext_from_plans(4, 3, deep_supervision=True, size="S", init_filters=4, strides=NNUNET_STRIDES)
    assert isinstance(model, MedNeXt) and model.decoder.deep_supervision is True
    mednext_from_plans(4, 3, size="S", init_filters=4, strides=[1, 2, 2, 2, 2])  # per-axis ints broadcast
    with pytest.raises(ValueError, match=r"\[\[1, 1, 1\], \[2, 2, 2\]"):
        mednext_from_plans(4, 3, size="S", init_filters=4, strides=NNUNET_STRIDES[:-1])
    with pytest.raises(ValueError, match="strides"):
        mednext_from_plans(4, 3, size="S", init_filters=4, strides=[[1, 1, 1]] + [[1, 2, 2]] * 4)
    with pytest.raises(TypeError, match="features_per_stage.*n_stages"):
        mednext_from_plans(4, 3, strides=NNUNET_STRIDES, n_stages=5, features_per_stage=[32] * 5)


# --- MONAI builders ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "adapter", "kwargs", "size"),
    [
        # the deepest level must hold more than one voxel (instance norm), hence 64 x 32 x 32 for Swin-UNETR
        (swin_unetr, swinunetr_from_plans, {"feature_size": 12}, (64, 32, 32)),
        (residual_unet, resunet_from_plans, {"channels": (4, 8, 16, 32, 64)}, (32, 16, 16)),
        (segresnet, segresnet_from_plans, {"init_filters": 8}, (16, 16, 16)),
    ],
)
def test_monai_builders_shapes_and_deep_supervision_switch(build, adapter, kwargs, size):
    net = build(4, 3, **kwargs).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 4, *size)).shape == (1, 3, *size)
    net.decoder.deep_supervision = False
    assert net.decoder.deep_supervision is False
    net.decoder.deep_supervision = True  # nnU-Net sets it back after validation: accepted, no effect
    assert net.decoder.deep_supervision is False
    net.eval()
    with torch.no_grad():
        assert net(torch.randn(1, 4, *size)).shape == (1, 3, *size)
    assert list(net.decoder.parameters()) == [] and list(net.decoder.buffers()) == []
    assert type(net).__module__.startswith(
        "monai."
    )  # MONAI's own class; the builder refuses to replace a decoder
    assert all(not k.startswith("decoder.") for k in net.state_dict())

    from_plans = adapter(4, 3, deep_supervision=False, strides=NNUNET_STRIDES, **kwargs)
    assert type(from_plans) is type(net)
    assert list(from_plans.state_dict()) == list(net.state_dict())
    with pytest.raises(ValueError, match="no deep supervision"):
        adapter(4, 3, deep_supervision=True, strides=NNUNET_STRIDES, **kwargs)


def test_attached_decoder_leaves_state_dict_keys_unchanged():
    from monai.networks.nets import UNet

    torch.manual_seed(1)
    bare = UNet(3, 4, 3, (4, 8, 16, 32, 64), (2, 2, 2, 2), num_res_units=2)
    torch.manual_seed(1)
    ours = residual_unet(4, 3, channels=(4, 8, 16, 32, 64))
    assert list(bare.state_dict()) == list(ours.state_dict())
    bare.load_state_dict(ours.state_dict(), strict=True)
    ours.load_state_dict(bare.state_dict(), strict=True)


# --- pretrained Swin encoder ---------------------------------------------------------------------


def test_load_swin_encoder_weights_from_monai_ssl_format(tmp_path):
    pretrained = swin_unetr(4, 3, feature_size=12)
    encoder_state = pretrained.swinViT.state_dict()
    ssl = {}
    for k, v in encoder_state.items():  # the self-supervised checkpoints name the MLP layers fc1/fc2
        ssl["module." + k.replace(".mlp.linear1.", ".mlp.fc1.").replace(".mlp.linear2.", ".mlp.fc2.")] = v
    ssl["module.rotation_head.weight"] = torch.zeros(4, 12)  # SSL heads are not part of the encoder
    path = tmp_path / "model_swinvit.pt"
    torch.save({"state_dict": ssl, "epoch": 100}, path)

    fresh = swin_unetr(4, 3, feature_size=12)
    assert not torch.equal(fresh.swinViT.patch_embed.proj.weight, pretrained.swinViT.patch_embed.proj.weight)
    decoder_before = fresh.out.conv.conv.weight.clone()
    result = load_swin_encoder_weights(fresh, path)
    assert result == {
        "matched": len(encoder_state),
        "total_in_file": len(ssl),
        "total_in_model": len(encoder_state),
    }
    for k, v in fresh.swinViT.state_dict().items():
        assert torch.equal(v, encoder_state[k]), k
    assert torch.equal(fresh.out.conv.conv.weight, decoder_before)

    plain = tmp_path / "full.pt"  # a plain full-model state dict loads too (encoder part only)
    torch.save(pretrained.state_dict(), plain)
    assert load_swin_encoder_weights(swin_unetr(4, 3, feature_size=12), plain)["matched"] == len(
        encoder_state
    )


def test_load_swin_encoder_weights_errors(tmp_path):
    model = swin_unetr(4, 3, feature_size=12)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_swin_encoder_weights(model, tmp_path / "missing.pt")
    unrelated = tmp_path / "unrelated.pt"
    torch.save({"state_dict": {"conv.weight": torch.zeros(2, 2), "fc.bias": torch.zeros(2)}}, unrelated)
    with pytest.raises(InputError, match=r"unrelated\.pt.*2 tensors.*conv\.weight"):
        load_swin_encoder_weights(model, unrelated)
    garbage = tmp_path / "garbage.pt"
    garbage.write_text("not a checkpoint")
    with pytest.raises(InputError, match=r"cannot read pretrained weights file .*garbage\.pt"):
        load_swin_encoder_weights(model, garbage)


def test_load_swin_encoder_weights_from_an_nnunet_checkpoint_with_other_input_channels(tmp_path):
    import numpy as np

    pretrained = swin_unetr(1, 3, feature_size=12)  # one input channel: the patch embedding cannot load
    path = tmp_path / "checkpoint_final.pth"
    torch.save(
        {"network_weights": pretrained.state_dict(), "trainer_name": "x", "_best_ema": np.float64(0.5)}, path
    )
    model = swin_unetr(4, 3, feature_size=12)
    n_encoder = len(model.swinViT.state_dict())
    with pytest.warns(UserWarning) as caught:
        result = load_swin_encoder_weights(model, path)
    messages = " ".join(str(w.message) for w in caught)
    assert "weights_only=False" in messages and "patch_embed.proj.weight" in messages
    assert result == {
        "matched": n_encoder - 1,
        "total_in_file": len(pretrained.state_dict()),
        "total_in_model": n_encoder,
    }
    assert torch.equal(
        model.swinViT.layers4[0].downsample.reduction.weight,
        pretrained.swinViT.layers4[0].downsample.reduction.weight,
    )


@pytest.mark.parametrize("key", ["mednext", "swinunetr", "resunet", "segresnet"])
def test_channels_last_3d_changes_the_layout_not_the_arithmetic(key):
    """The trainers put a 3D network's weights in ``channels_last_3d`` on the CPU (faster there): the loss
    and every gradient match the contiguous network's (same weights, same batch; float tolerance)."""
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    from nnunet_diffrefine.training.architectures import ARCHITECTURES

    spec = ARCHITECTURES[key]
    arch = spec.architecture(cpu=True)
    networks = []
    for _ in range(2):
        torch.manual_seed(0)
        networks.append(get_network_from_plans(arch["network_class_name"], arch["arch_kwargs"], [], 4, 3))
    contiguous, channels_last = networks
    channels_last.to(memory_format=torch.channels_last_3d)
    assert channels_last.state_dict().keys() == contiguous.state_dict().keys()
    strides = [(p.stride(), q.stride()) for p, q in zip(contiguous.parameters(), channels_last.parameters())]
    assert any(a != b for a, b in strides), "some weight changed layout"
    x = torch.randn(1, 4, 64, 64, 64)
    results = []
    for network in networks:
        out = network(x)
        out = out[0] if isinstance(out, (list, tuple)) else out
        loss = (out.float() ** 2).mean()
        loss.backward()
        grads = [p.grad.flatten() for p in network.parameters() if p.grad is not None]
        results.append((loss.item(), torch.cat(grads)))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-4)
    a, b = results[0][1], results[1][1]  # float sums in another order: compared as one gradient vector
    assert a.shape == b.shape and float((a - b).norm() / a.norm()) < 1e-3
