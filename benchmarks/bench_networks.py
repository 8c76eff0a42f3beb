"""Parameters and forward+backward seconds per training iteration of every network, at a 64^3 patch.

Usage: python benchmarks/bench_networks.py [--patch 64] [--batch 2] [--iters 3] [--preset default cpu]
       [--networks NAME ...] [--memory-format contiguous channels_last_3d]
       [-o benchmarks/results/networks_cpu]

Networks: MedNeXt (with GRN, deep supervision), Swin-UNETR, residual U-Net, SegResNet as the trainers
build them from the plans (``default``: the papers' sizes; ``cpu``: the small-CPU preset), and stock
nnU-Net's PlainConvUNet planned for the same patch (nnU-Net's own topology rules). One iteration =
forward, DSC++ + BCE loss on three region channels, backward, AdamW step, batch of 2, 4 input
channels. ``--memory-format channels_last_3d`` runs network and input in that layout (the same
numbers, another kernel path), to see whether it pays on this CPU. Writes ``OUT.json`` and ``OUT.md``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch
from _setup import machine, save_json

from nnunet_diffrefine.losses.segmentation import dsc_pp_bce
from nnunet_diffrefine.training.architectures import ARCHITECTURES
from nnunet_diffrefine.utils.resources import measure


def stock_nnunet(patch: int, cpu: bool) -> torch.nn.Module:
    """nnU-Net's default 3D PlainConvUNet for a cubic patch at 1 mm, as its planner would configure it."""
    from nnunetv2.experiment_planning.experiment_planners.network_topology import get_pool_and_conv_props
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    _, pool_kernels, conv_kernels, _, _ = get_pool_and_conv_props([1.0, 1.0, 1.0], [patch] * 3, 4, 999999)
    n = len(conv_kernels)
    base = 8 if cpu else 32
    kwargs = {
        "n_stages": n,
        "features_per_stage": [min(base * 2**i, 128 if cpu else 320) for i in range(n)],
        "conv_op": "torch.nn.modules.conv.Conv3d",
        "kernel_sizes": conv_kernels,
        "strides": pool_kernels,
        "n_conv_per_stage": [2] * n,
        "n_conv_per_stage_decoder": [2] * (n - 1),
        "conv_bias": True,
        "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
        "norm_op_kwargs": {"eps": 1e-05, "affine": True},
        "dropout_op": None,
        "dropout_op_kwargs": None,
        "nonlin": "torch.nn.LeakyReLU",
        "nonlin_kwargs": {"inplace": True},
    }
    return get_network_from_plans(
        "dynamic_network_architectures.architectures.unet.PlainConvUNet",
        kwargs,
        ["conv_op", "norm_op", "dropout_op", "nonlin"],
        4,
        3,
        deep_supervision=True,
    )


MEMORY_FORMATS = {"contiguous": torch.contiguous_format, "channels_last_3d": torch.channels_last_3d}


def our_network(key: str, cpu: bool) -> torch.nn.Module:
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    spec = ARCHITECTURES[key]
    arch = spec.architecture(cpu=cpu)
    return get_network_from_plans(
        arch["network_class_name"], arch["arch_kwargs"], [], 4, 3, deep_supervision=spec.deep_supervision
    )


def time_iterations(
    network: torch.nn.Module, patch: int, batch: int, iters: int, memory_format: str = "contiguous"
) -> dict:
    """Seconds (median over ``iters`` after one warm-up) and peak RSS (MB) of one training iteration
    on a ``(batch, 4, patch, patch, patch)`` input, network and input in ``memory_format``."""
    loss_fn = dsc_pp_bce(regions=True)
    layout = MEMORY_FORMATS[memory_format]
    network.to(memory_format=layout)
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-4, weight_decay=1e-5)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 4, patch, patch, patch, generator=generator).contiguous(memory_format=layout)
    y = (torch.rand(batch, 3, patch, patch, patch, generator=generator) > 0.8).float()
    network.train()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        out = network(x)
        out = out[0] if isinstance(out, (list, tuple)) else out
        loss_fn(out, y).backward()
        optimizer.step()

    step()  # warm-up
    seconds, peak = [], 0.0
    for _ in range(iters):
        with measure("cpu") as m:
            step()
        seconds.append(m.seconds)
        peak = max(peak, m.peak_rss_mb)
    return {
        "seconds_per_iteration": round(float(np.median(seconds)), 3),
        "all_seconds": [round(s, 3) for s in seconds],
        "peak_rss_mb": round(peak, 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--preset", nargs="+", default=["default", "cpu"], choices=["default", "cpu"])
    parser.add_argument("--networks", nargs="+", help="only these rows (names as in the table)")
    parser.add_argument("--memory-format", nargs="+", default=["contiguous"], choices=list(MEMORY_FORMATS))
    parser.add_argument("-o", default=str(Path(__file__).parent / "results" / "networks_cpu"))
    args = parser.parse_args()
    torch.manual_seed(0)
    rows = []
    for preset in args.preset:
        cpu = preset == "cpu"
        builders = {"nnU-Net PlainConvUNet (stock)": lambda cpu=cpu: stock_nnunet(args.patch, cpu)}
        builders.update(
            {ARCHITECTURES[k].plans_suffix: (lambda k=k, cpu=cpu: our_network(k, cpu)) for k in ARCHITECTURES}
        )
        unknown = set(args.networks or []) - set(builders)
        if unknown:
            parser.error(f"unknown networks {sorted(unknown)}; choose from {sorted(builders)}")
        for name, build in builders.items():
            if args.networks and name not in args.networks:
                continue
            for memory_format in args.memory_format:
                torch.manual_seed(0)
                network = build()
                params = sum(p.numel() for p in network.parameters())
                start = time.perf_counter()
                timing = time_iterations(network, args.patch, args.batch, args.iters, memory_format)
                rows.append(
                    {
                        "network": name,
                        "preset": preset,
                        "memory_format": memory_format,
                        "parameters": params,
                        **timing,
                        "wall_s": round(time.perf_counter() - start, 1),
                    }
                )
                print(rows[-1], flush=True)
                del network
    result = {
        "benchmark": "forward+backward seconds per training iteration",
        "patch": [args.patch] * 3,
        "batch": args.batch,
        "iterations_timed": args.iters,
        "threads": torch.get_num_threads(),
        "machine": machine(torch=torch.__version__),
        "rows": rows,
    }
    out = Path(args.o)
    save_json(result, out.with_suffix(".json"))
    lines = [
        f"Forward + backward + AdamW step, batch {args.batch}, patch {args.patch}^3, 4 channels in, 3 out, "
        f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} threads); median of {args.iters} iterations.",
        "",
        "| Network | Preset | Memory format | Parameters | s / iteration | Peak RSS (MB) |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['network']} | {r['preset']} | {r['memory_format']} | {r['parameters']:,} | "
        f"{r['seconds_per_iteration']:.2f} | {r['peak_rss_mb']:.0f} |"
        for r in rows
    ]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
