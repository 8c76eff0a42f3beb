"""CorrDiff refinement on a held-out synthetic split: Dice/HD95 before and after, and its cost at this size.

Usage: python benchmarks/bench_refine.py [--work DIR] [--num-train 20] [--num-test 6] [--shape 48]
       [--epochs 10] [--iters 25] [--refiner-epochs 12] [--refiner-iters 30] [--refiner-patience 6]
       [--steps 25] [-o benchmarks/results/refine_corrdiff]

Runs the real commands on a fresh synthetic dataset: nnUNetv2_plan_and_preprocess, the small-CPU
MedNeXt preset, ``nnUNetv2_train -tr MedNeXtCorrDiffTrainer`` on a fold 0 that trains on half of the
training cases and validates on the other half (``splits_final.json``; a short base schedule, so the
base model leaves errors to correct, and its out-of-fold half is CorrDiff's training data),
prediction of the test split with nnU-Net's predictor (no test-time mirroring, timed per case),
``refine`` (timed per case) and the BraTS evaluation of both. Writes ``OUT.json`` and ``OUT.md``.
The cost target (refinement at most half the base prediction) is about nnU-Net's real plans and
grids: ``benchmarks/bench_refine_cost.py`` measures it; at this toy size the small-CPU MedNeXt
predicts a case in a fraction of a second and the ratio here says little.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=None, help="working folder (default: a temporary one)")
    parser.add_argument("--num-train", type=int, default=20)
    parser.add_argument("--num-test", type=int, default=6)
    parser.add_argument("--shape", type=int, default=48)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--iters", type=int, default=25)
    parser.add_argument("--refiner-epochs", type=int, default=12)
    parser.add_argument("--refiner-iters", type=int, default=30)
    parser.add_argument("--refiner-patience", type=int, default=6)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("-o", default=str(Path(__file__).parent / "results" / "refine_corrdiff"))
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_refine_"))

    from _setup import save_json, synthesize_and_plan, workspace, write_half_split

    from nnunet_diffrefine.benchmark.predict import case_files, predict_cases
    from nnunet_diffrefine.environment import TrainerSchedule, refiner_stage_environment
    from nnunet_diffrefine.evaluation.folder import evaluate_folder
    from nnunet_diffrefine.refine.run import RefineOptions, refine_folder
    from nnunet_diffrefine.training.plans_presets import write_plans_preset

    schedule = TrainerSchedule(
        num_epochs=args.epochs,
        num_iterations_per_epoch=args.iters,
        num_val_iterations_per_epoch=2,
        warmup_epochs=1,
    )
    refiner = refiner_stage_environment(
        "cpu",
        max_epochs=args.refiner_epochs,
        iterations_per_epoch=args.refiner_iters,
        patience=args.refiner_patience,
        inference_steps=args.steps,
    )
    nnunet = workspace(work, **schedule.environment(), **refiner)
    dataset_id, trainer, plans = 960, "MedNeXtCorrDiffTrainer", "nnUNetPlansMedNeXtCPU"
    raw, pre = synthesize_and_plan(
        nnunet, dataset_id, "BenchRefine", args.num_train, args.num_test, args.shape, 42
    )
    if not (pre / f"{plans}.json").is_file():
        write_plans_preset(dataset_id, "mednext", cpu=True, preprocessed_root=pre.parent)
    half, rest = write_half_split(raw, pre)
    model = work / "nnUNet_results" / "Dataset960_BenchRefine" / f"{trainer}__{plans}__3d_fullres"
    if not (model / "fold_0" / "refiner_corrdiff" / "refiner_final.pth").is_file():
        nnunet.train(dataset_id, 0, trainer, plans, resume=False)
    dataset_json = json.loads((model / "dataset.json").read_text())
    cases = case_files(raw / "imagesTs", ".nii.gz", 4)
    base = predict_cases(model, 0, cases, work / "pred", "cpu", use_mirroring=False, save_probabilities=True)
    refined_dir = refine_folder(
        work / "pred", work / "refined", model, [0], raw / "imagesTs", RefineOptions(refiner="corrdiff")
    )
    refine_timings = json.loads((refined_dir / "timings.json").read_text())
    summaries = {
        name: evaluate_folder(
            raw / "labelsTs", work / folder, dataset_json, work / f"summary_{name}.json", progress=False
        )
        for name, folder in (("base", "pred"), ("refined", "refined"))
    }
    names = {(1, 2, 3): "WT", (1, 3): "TC", (3,): "ET"}
    per_region = {
        name: {
            names[tuple(r) if isinstance(r, tuple) else r]: {
                k: round(float(v), 4)
                for k, v in m.items()
                if k in ("Dice", "HD95", "Sensitivity", "Precision")
            }
            for r, m in s["mean"].items()
        }
        for name, s in summaries.items()
    }
    base_s = sum(m.seconds for m in base.values()) / len(base)
    refine_s = sum(t["seconds"] for t in refine_timings.values()) / len(refine_timings)
    history = json.loads((model / "fold_0" / "refiner_corrdiff" / "training_history.json").read_text())
    result = {
        "benchmark": "CorrDiff refinement vs the base MedNeXt prediction (held-out synthetic test split)",
        "settings": vars(args) | {"work": str(work)},
        "test_cases": len(cases),
        "base_prediction_seconds_per_case": round(base_s, 3),
        "base_prediction_peak_rss_mb": round(max(m.peak_rss_mb for m in base.values()), 1),
        "refinement_seconds_per_case": round(refine_s, 3),
        "refinement_peak_rss_mb": round(max(t["peak_rss_mb"] for t in refine_timings.values()), 1),
        "refinement_cost_ratio": round(refine_s / base_s, 3),
        "cost_note": "toy size; the cost target is measured by benchmarks/bench_refine_cost.py",
        "fold_0": f"train {half} / validate {rest} (the refiner's out-of-fold cases)",
        "metrics": per_region,
        "refiner_training": {
            "best_epoch": history["best_epoch"],
            "best_validation_dice": history["best_dice"],
            "prior_validation_dice": history["prior_dice"],
            "epochs_run": len(history["epochs"]),
        },
    }
    out = Path(args.o)
    save_json(result, out.with_suffix(".json"))
    lines = [
        f"CorrDiff refinement, {len(cases)} held-out synthetic cases ({args.shape}^3), base MedNeXt (small-CPU preset) "
        f"trained {args.epochs} x {args.iters} iterations on {half} cases; CorrDiff at most {args.refiner_epochs} x "
        f"{args.refiner_iters} (patience {args.refiner_patience}) on the other {rest} (out-of-fold), {args.steps} "
        "reverse steps; `python benchmarks/bench_refine.py`.",
        "",
        "| | Dice WT | Dice TC | Dice ET | HD95 WT | HD95 TC | HD95 ET |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in ("base", "refined"):
        m = per_region[name]
        lines.append(
            f"| {name} | "
            + " | ".join(f"{m[r]['Dice']:.3f}" for r in ("WT", "TC", "ET"))
            + " | "
            + " | ".join(f"{m[r]['HD95']:.1f}" for r in ("WT", "TC", "ET"))
            + " |"
        )
    lines += [
        "",
        f"Seconds per case: base prediction {base_s:.2f} (no mirroring), refinement {refine_s:.2f} "
        f"(at this toy size; the cost target is measured on nnU-Net's BraTS plans by bench_refine_cost.py). "
        f"Peak RSS: {result['base_prediction_peak_rss_mb']:.0f} MB vs {result['refinement_peak_rss_mb']:.0f} MB. "
        f"CorrDiff's validation Dice (out-of-fold): {history['prior_dice']:.3f} (base) -> {history['best_dice']:.3f} "
        f"(epoch {history['best_epoch']}).",
    ]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
