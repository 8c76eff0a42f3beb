"""CorrDiff's reverse steps: what fewer DDIM steps cost in quality, on the refinement benchmark's data.

Usage: python benchmarks/bench_corrdiff_steps.py [--work DIR] [--steps 25 10 5] [-o benchmarks/results/corrdiff_steps]

Why: the paper samples in 25 reverse steps (Evans et al., Table 1), and at 25 steps CorrDiff costs 0.89x
its MedNeXt prior's prediction on the 240x240x155 grid (``bench_refine_cost.py``), against issue 13's
0.25x target. The cost is nearly linear in the steps, so this measures the other half of the trade:
with the refinement benchmark's trained MedNeXt folds and its trained CorrDiff (nothing is retrained),
each fold's test prior is refined with ``inference_steps`` = N, the folds ensembled as in the
benchmark's CoMNeT row, and the ensemble scored against the MedNeXt ensemble on the same test cases
(paired per-case differences of mean Dice and HD95, bootstrap 95 % CI, Wilcoxon p). N = the trained
setting reuses the benchmark's own CoMNeT predictions. Needs a finished MedNeXt + CorrDiff part of
``bench_refinement.py`` in ``--work``; resumable (a finished N is skipped); seconds per case from the
refine command's ``timings.json`` (the 48³ phantoms, not the 240 grid).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _setup import save_json  # noqa: E402
from bench_refinement import REFINED, Benchmark, _complete  # noqa: E402
from bench_refinement import parse_args as benchmark_args  # noqa: E402

ROW = "CoMNeT (MedNeXt + CorrDiff, fold ensemble)"
PRIOR = REFINED[ROW][0]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", help="the refinement benchmark's work folder (default: its seed 0, adult one)")
    p.add_argument("--steps", type=int, nargs="+", default=[25, 10, 5])
    p.add_argument("-o", default=str(Path(__file__).parent / "results" / "corrdiff_steps"))
    return p.parse_args()


def refine_with_steps(b: Benchmark, steps: int, trained_steps: int) -> tuple[Path, float | None]:
    """The fold ensemble refined with ``steps`` reverse steps, and the seconds per case (None: reused)."""
    if steps == trained_steps:
        return b.predictions(ROW, "ensemble"), None
    from nnunet_diffrefine.refine.postprocess import PostprocessConfig
    from nnunet_diffrefine.refine.run import RefineOptions, refine_folder

    n, seconds = len(b.test_cases()), []
    base = b.work / "predictions" / f"CoMNeT_steps{steps}"
    folders = []
    for fold in b.folds:
        out = base / f"fold_{fold}"
        folders.append(out)
        if not _complete(out, n):
            started = time.perf_counter()
            refine_folder(
                b.predictions(PRIOR, fold),
                out,
                b.model(PRIOR),
                [0],
                b.raw / "imagesTs",
                RefineOptions(
                    refiner="corrdiff",
                    postprocess=PostprocessConfig(enabled=False),
                    overrides={"inference_steps": steps},
                ),
            )
            print(f"steps {steps}, fold {fold}: {time.perf_counter() - started:.1f} s", flush=True)
        timings = json.loads((out / "timings.json").read_text())
        seconds += [t["seconds"] for t in timings.values()]
    ensemble = base / "ensemble"
    if not (ensemble / "dataset.json").is_file():
        from nnunet_diffrefine.benchmark.scores import ensemble_folders

        model = b.model(PRIOR)
        ensemble_folders(
            folders,
            ensemble,
            json.loads((model / "dataset.json").read_text()),
            json.loads((model / "plans.json").read_text()),
        )
    return ensemble, sum(seconds) / len(seconds)


def main() -> None:
    from nnunet_diffrefine.benchmark.paired import paired_difference
    from nnunet_diffrefine.benchmark.scores import per_case_scores
    from nnunet_diffrefine.evaluation.folder import dataset_regions, evaluate_folder
    from nnunet_diffrefine.utils.io import atomic_output_file

    args = parse_args()
    # the classic run's work folder: the one this measurement was made on
    sys.argv = [sys.argv[0], "--profile", "classic", *(["--work", args.work] if args.work else [])]
    b = Benchmark(benchmark_args())
    config = json.loads((b.refiner_folder(PRIOR, "corrdiff") / "refiner.json").read_text())
    trained_steps = int(config["settings"]["inference_steps"])
    dataset_json = json.loads((b.raw / "dataset.json").read_text())
    _, names, _ = dataset_regions(dataset_json)
    names = {str(k): v for k, v in names.items()}

    def scores(folder: Path) -> dict:
        summary = evaluate_folder(
            b.raw / "labelsTs", folder, dataset_json, folder / "summary.json", num_processes=1, progress=False
        )
        return per_case_scores(summary, names)

    prior = scores(b.predictions(PRIOR, "ensemble"))
    rows = []
    for steps in args.steps:
        folder, seconds = refine_with_steps(b, steps, trained_steps)
        own = scores(folder)
        dice = paired_difference(
            {c: v["dice"] for c, v in prior.items()}, {c: v["dice"] for c, v in own.items()}, 0
        )
        hd95 = paired_difference(
            {c: v["hd95"] for c, v in prior.items()}, {c: v["hd95"] for c, v in own.items()}, 0
        )
        rows.append(
            {
                "inference_steps": steps,
                "mean_dice": sum(v["dice"] for v in own.values()) / len(own),
                "mean_hd95": sum(v["hd95"] for v in own.values()) / len(own),
                "delta_dice": dice["mean"],
                "delta_dice_ci95": dice["ci95"],
                "wilcoxon_p": dice["wilcoxon_p"],
                "delta_hd95": hd95["mean"],
                "delta_hd95_ci95": hd95["ci95"],
                "seconds_per_case_48": seconds,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    record = {
        "benchmark": "CorrDiff reverse steps vs quality (refinement benchmark data, nothing retrained)",
        "work": str(b.work),
        "trained_inference_steps": trained_steps,
        "prior": PRIOR,
        "prior_mean_dice": sum(v["dice"] for v in prior.values()) / len(prior),
        "num_cases": len(prior),
        "rows": rows,
    }
    out = Path(args.o)
    save_json(record, out.with_suffix(".json"))
    lines = [
        f"CorrDiff reverse steps on the refinement benchmark's test split ({len(prior)} cases; `{b.work.name}`), "
        f"prior {PRIOR} fold ensemble, mean Dice {record['prior_mean_dice']:.3f}; "
        "`python benchmarks/bench_corrdiff_steps.py`.",
        "",
        "| steps | mean Dice | Δ Dice [95 % CI] | Wilcoxon p | mean HD95 (mm) | Δ HD95 [95 % CI] | s per case (48³) |",
        "|---:|---:|---|---:|---:|---|---:|",
    ]
    for r in rows:
        lo, hi = r["delta_dice_ci95"]
        hlo, hhi = r["delta_hd95_ci95"]
        sec = "(benchmark row)" if r["seconds_per_case_48"] is None else f"{r['seconds_per_case_48']:.1f}"
        lines.append(
            f"| {r['inference_steps']} | {r['mean_dice']:.3f} | {r['delta_dice']:+.4f} [{lo:+.4f}, {hi:+.4f}] | "
            f"{r['wilcoxon_p']:.3g} | {r['mean_hd95']:.2f} | {r['delta_hd95']:+.2f} [{hlo:+.2f}, {hhi:+.2f}] | {sec} |"
        )
    with atomic_output_file(out.with_suffix(".md"), overwrite=True) as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
