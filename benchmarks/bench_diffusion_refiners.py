"""Ke et al.'s Table 3 diffusion rows on a held-out synthetic split: DDPM and MedSegDiff, conditioned on a
Swin-UNETR prior and from scratch, next to that prior and stock nnU-Net.

Usage: python benchmarks/bench_diffusion_refiners.py [--work DIR] [--num-train 24] [--num-test 8]
       [--shape 64] [--epochs 15] [--iters 20] [--refiner-epochs 8] [--refiner-iters 30]
       [-o benchmarks/results/diffusion_refiners]

Runs the real commands on a fresh synthetic dataset: nnUNetv2_plan_and_preprocess; the small-CPU
plans presets; ``nnUNetv2_train`` of stock nnU-Net and of ``SwinUNETRTrainer --npz`` on fold 0, a
short schedule and a fold 0 that validates on half of the training cases (``splits_final.json``), so
that the prior leaves errors to correct and the refiners have out-of-fold cases to learn from;
``nnunet-diffrefine train-refiner`` for the four refiners on that one Swin-UNETR model (the same prior
for all four); then ``nnunet-diffrefine benchmark --split test`` (no test-time mirroring) for Dice
TC/WT/ET/avg, HD95, sensitivity, precision and seconds per case (a refined row's seconds are the
Swin-UNETR prediction plus the refinement). Writes ``OUT.json`` and ``OUT.md`` with the table and the
two checks of the issue: each conditioned refiner beats its unconditional counterpart (mean Dice),
and conditioned MedSegDiff's HD95 is not worse than its prior's.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

DATASET_ID, DATASET_NAME = 962, "Dataset962_BenchDiffusion"
STOCK = ("nnUNetTrainerCustomSchedule", "nnUNetPlansCPU")
SWIN = ("SwinUNETRTrainer", "nnUNetPlansSwinUNETRCPU")
REFINERS = ("ddpm_scratch", "ddpm", "medsegdiff_scratch", "medsegdiff")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=None, help="working folder (default: a temporary one)")
    parser.add_argument("--num-train", type=int, default=24)
    parser.add_argument("--num-test", type=int, default=8)
    parser.add_argument("--shape", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=15, help="base models: epochs")
    parser.add_argument("--iters", type=int, default=20, help="base models: iterations per epoch")
    parser.add_argument("--refiner-epochs", type=int, default=8)
    parser.add_argument("--refiner-iters", type=int, default=30)
    parser.add_argument("--refiner-patience", type=int, default=8)
    parser.add_argument("-o", default=str(Path(__file__).parent / "results" / "diffusion_refiners"))
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_diffusion_"))

    from _setup import save_json, synthesize_and_plan, workspace, write_half_split

    from nnunet_diffrefine.benchmark.models import parse_model
    from nnunet_diffrefine.benchmark.run import run_benchmark
    from nnunet_diffrefine.environment import TrainerSchedule
    from nnunet_diffrefine.training.plans_presets import write_plans_preset

    schedule = TrainerSchedule(
        num_epochs=args.epochs,
        num_iterations_per_epoch=args.iters,
        num_val_iterations_per_epoch=3,
        warmup_epochs=1,
    )
    nnunet = workspace(work, **schedule.environment())
    raw, pre = synthesize_and_plan(
        nnunet, DATASET_ID, DATASET_NAME.split("_", 1)[1], args.num_train, args.num_test, args.shape, 2026
    )
    for arch, (_, plans) in (("nnunet", STOCK), ("swinunetr", SWIN)):
        if not (pre / f"{plans}.json").is_file():
            write_plans_preset(DATASET_ID, arch, cpu=True, preprocessed_root=pre.parent)
    half, rest = write_half_split(raw, pre)

    results = work / "nnUNet_results" / DATASET_NAME
    for trainer, plans in (STOCK, SWIN):
        if not (results / f"{trainer}__{plans}__3d_fullres" / "fold_0" / "checkpoint_final.pth").is_file():
            nnunet.train(DATASET_ID, 0, trainer, plans, resume=False)
    swin_fold = results / f"{SWIN[0]}__{SWIN[1]}__3d_fullres" / "fold_0"
    for name in REFINERS:
        if not (swin_fold / f"refiner_{name}" / "refiner_final.pth").is_file():
            nnunet.run(
                "nnunet-diffrefine",
                ["train-refiner", "-d", str(DATASET_ID), "-tr", SWIN[0]]
                + [
                    "-p",
                    SWIN[1],
                    "-f",
                    "0",
                    "--refiner",
                    name,
                    "--preset",
                    "cpu",
                    "--epochs",
                    str(args.refiner_epochs),
                ]
                + ["--iters-per-epoch", str(args.refiner_iters), "--patience", str(args.refiner_patience)],
            )

    models = [
        parse_model(f"nnU-Net (stock)={STOCK[0]}:{STOCK[1]}"),
        parse_model(f"Swin-UNETR={SWIN[0]}:{SWIN[1]}+" + "+".join(REFINERS)),
    ]
    out = run_benchmark(
        nnunet.folders,
        DATASET_ID,
        models,
        [0],
        split="test",
        output=work / "benchmark",
        use_mirroring=False,
        overwrite=True,
    )
    record = json.loads((out / "benchmark.json").read_text())
    rows = {m["name"]: m["folds"][0] for m in record["models"]}

    def dice_avg(row: str) -> float:
        per_region = rows[row]["per_region"]
        return sum(per_region[r]["Dice"] for r in ("TC", "WT", "ET")) / 3

    def hd95_avg(row: str) -> float:
        per_region = rows[row]["per_region"]
        return sum(per_region[r]["HD95"] for r in ("TC", "WT", "ET")) / 3

    swin = "Swin-UNETR"
    checks = {
        "DDPM conditioned beats DDPM scratch (mean Dice)": dice_avg(f"{swin} + ddpm")
        > dice_avg(f"{swin} + ddpm_scratch"),
        "MedSegDiff conditioned beats MedSegDiff scratch (mean Dice)": dice_avg(f"{swin} + medsegdiff")
        > dice_avg(f"{swin} + medsegdiff_scratch"),
        "MedSegDiff conditioned HD95 not worse than its Swin-UNETR prior": hd95_avg(f"{swin} + medsegdiff")
        <= hd95_avg(swin),
    }
    histories = {}
    for name in REFINERS:
        h = json.loads((swin_fold / f"refiner_{name}" / "training_history.json").read_text())
        histories[name] = {
            "epochs_run": len(h["epochs"]),
            "best_epoch": h["best_epoch"],
            "best_validation_dice": round(h["best_dice"], 4),
            "prior_validation_dice": round(h["prior_dice"], 4),
            **({"choices": h["best_choices"]} if h.get("best_choices") else {}),
        }
    result = {
        "benchmark": "Ke et al. Table 3 diffusion rows on a held-out synthetic split (fold 0)",
        "settings": vars(args) | {"work": str(work), "fold_0": f"train {half} / validate {rest}"},
        "mean_dice": {row: round(dice_avg(row), 4) for row in rows},
        "mean_hd95_mm": {row: round(hd95_avg(row), 2) for row in rows},
        "checks": checks,
        "refiner_training": histories,
        "benchmark_json": record,
    }
    target = Path(args.o)
    save_json(result, target.with_suffix(".json"))
    lines = [
        f"Ke et al.'s Table 3 diffusion rows, {args.num_test} held-out synthetic cases ({args.shape}^3), fold 0 "
        f"(trained on {half} cases, refiners on the other {rest} out-of-fold); base models "
        f"{args.epochs} x {args.iters} iterations (small-CPU presets), refiners at most {args.refiner_epochs} x "
        f"{args.refiner_iters} (early stopping, patience {args.refiner_patience}); no test-time mirroring; "
        "`python benchmarks/bench_diffusion_refiners.py`.",
        "",
        (out / "benchmark.md").read_text().split("\n", 2)[2].strip(),
        "",
        "Checks:",
        "",
        *[f"- {k}: {'yes' if v else 'NO'}" for k, v in checks.items()],
        "",
        "Refiner training (validation Dice on the out-of-fold validation cases, prior -> best epoch): "
        + "; ".join(
            f"{n} {h['prior_validation_dice']:.3f} -> {h['best_validation_dice']:.3f} (epoch {h['best_epoch']})"
            for n, h in histories.items()
        ),
    ]
    target.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
