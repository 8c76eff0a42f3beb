"""Scores, statistics, protocol check and the written results of ``bench_refinement.py``."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from _setup import write_results
from bench_refinement_rows import BASES, DATASET_ID, PAIRS, REFINED, TABLES

from nnunet_diffrefine.benchmark import rows as rows_lib
from nnunet_diffrefine.benchmark.protocol import protocol_problems
from nnunet_diffrefine.benchmark.scores import per_case_scores, uncertainty_auroc
from nnunet_diffrefine.evaluation.folder import dataset_regions, evaluate_folder

REGIONS = ("TC", "WT", "ET")


def available_rows(b) -> list[str]:
    """The rows whose fold ensemble is complete (a run stopped part way reports those)."""
    rows = [r for r in BASES if r in b.args.bases] + list(REFINED)
    return [r for r in rows if (b.predictions(r, "ensemble") / "dataset.json").is_file()]


def evaluate_rows(b) -> dict[str, dict[str, dict[str, float]]]:
    """Per-case scores of every row's fold ensemble on the test split."""
    dataset_json = json.loads((b.raw / "dataset.json").read_text())
    _, names, _ = dataset_regions(dataset_json)
    names = {str(k): v for k, v in names.items()}
    scores = {}
    for row in available_rows(b):
        folder = b.predictions(row, "ensemble")
        summary = evaluate_folder(
            b.raw / "labelsTs", folder, dataset_json, folder / "summary.json", num_processes=1, progress=False
        )
        scores[row] = per_case_scores(summary, names)
    return scores


def row_record(row: str, scores: dict, seed: int) -> dict:
    """One entry of ``rows``: the means and, for a refined row, the paired differences to its prior."""
    prior = REFINED[row][0] if row in REFINED else None
    return rows_lib.row_record(row, scores[row], REGIONS, prior, scores.get(prior), seed)


def comparisons(scores: dict, seed: int) -> list[dict]:
    """Conditioned vs scratch (and the full MedSegDiff vs its highway alone), paired per case."""
    out = []
    for a, b in PAIRS:
        if a in scores and b in scores:
            paired = rows_lib.paired_comparison(scores[a], scores[b], seed)
            out.append({"a": a, "b": b, **paired})
    return out


def refiner_details(b) -> dict:
    """Per refiner: the MedSegDiff fusion weight chosen on validation, the uncertainty AUROC, the
    validation Dice of the refiner's own early stopping, and the refiner.json used by the protocol check."""
    details = {}
    dataset_json = json.loads((b.raw / "dataset.json").read_text())
    for row, (prior, refiner, overrides) in REFINED.items():
        folder = b.refiner_folder(prior, refiner)
        if overrides or not (folder / "refiner.json").is_file():
            continue
        config = json.loads((folder / "refiner.json").read_text())
        extra = torch.load(folder / "refiner_final.pth", map_location="cpu", weights_only=True)["extra_state"]
        uncertain = b.predictions(row, "0_uncertainty")
        details[row] = {
            "refiner": refiner,
            "settings": config["settings"],
            "fusion_weight": extra.get("fusion_weight"),
            "uncertainty_auroc": uncertainty_auroc(
                uncertain, b.raw / "labelsTs", b.raw / "imagesTs", dataset_json, prior=b.predictions(prior, 0)
            )
            if (uncertain / "uncertainty").is_dir()
            else None,
            "validation_dice": config.get("best_validation_dice"),
            "prior_validation_dice": config.get("prior_validation_dice"),
            "num_training_cases": len(config["training_cases"]) + len(config["validation_cases"]),
            "config": config,
        }
    return details


def learning_curves(b) -> dict[str, dict[str, dict[str, list[float]]]]:
    """Per base row and fold, what nnU-Net logged per epoch (:func:`~nnunet_diffrefine.benchmark.rows.learning_curves`)."""
    return rows_lib.learning_curves({row: b.model(row) for row in BASES}, b.folds)


def targets(rows: dict[str, dict], details: dict) -> list[dict]:
    """The issue's targets, each with whether this run met it."""
    out = []

    def target(text: str, met: bool | None, value: str) -> None:
        out.append({"target": text, "met": met, "value": value})

    for r in BASES:
        if r in rows:
            target(
                f"{r} competent (mean Dice >= 0.70)",
                rows[r]["mean_dice"] >= 0.70,
                f"{rows[r]['mean_dice']:.3f}",
            )
    stock = rows.get("nnU-Net (stock)", {}).get("mean_dice")
    for r in ("MedNeXt", "Swin-UNETR"):
        if r in rows and stock is not None:
            gap = rows[r]["mean_dice"] - stock
            target(f"{r} at most 0.05 below stock nnU-Net", gap >= -0.05, f"{gap:+.3f}")
    comnet = rows.get(list(REFINED)[5])
    if comnet:
        target(
            "CoMNeT: >= +0.01 mean Dice over MedNeXt, CI above 0, HD95 not worse (its paired CI reaches 0 or below)",
            comnet["delta_dice"] >= 0.01
            and comnet["delta_dice_ci95"][0] > 0
            and comnet["delta_hd95_ci95"][0] <= 0,
            f"{comnet['delta_dice']:+.3f} [{comnet['delta_dice_ci95'][0]:+.3f}, {comnet['delta_dice_ci95'][1]:+.3f}], "
            f"HD95 {_ci(comnet, 'hd95')} mm",
        )
    msd = rows.get("MedSegDiff (cond)")
    if msd:
        target(
            "MedSegDiff (cond) HD95 below its Swin-UNETR prior (paired CI below 0)",
            msd["delta_hd95_ci95"][1] < 0,
            f"{_ci(msd, 'hd95')} mm, Wilcoxon p {msd['wilcoxon_p_hd95']:.3f}",
        )
    for r in ("DDPM (cond)", "MedSegDiff (cond)", list(REFINED)[5]):
        if r in rows:
            target(
                f"{r} does no harm (delta Dice >= -0.005)",
                rows[r]["delta_dice"] >= -0.005,
                f"{rows[r]['delta_dice']:+.3f}",
            )
    return out


def _ci(r: dict, metric: str) -> str:
    """``+0.012 [-0.003, +0.020]`` for ``metric`` "dice" (3 decimals) or "hd95" (mm, 2 decimals)."""
    d = 3 if metric == "dice" else 2
    lo, hi = r[f"delta_{metric}_ci95"]
    return f"{r[f'delta_{metric}']:+.{d}f} [{lo:+.{d}f}, {hi:+.{d}f}]"


def _auroc_cell(value) -> str:
    """The refiner's AUROCs next to the prior-entropy baseline; "n/a" where a map is constant. Results of
    older runs hold one number (the std over the brain, measured even for a constant map)."""
    if value is None:
        return "–"
    if not isinstance(value, dict):
        return f"{value:.3f} (brain, no baseline)"

    def f(key: str) -> str:
        return "n/a" if value.get(key) is None else f"{value[key]:.3f}"

    return f"{f('std_brain')} / {f('prior_entropy_brain')}; {f('std_band')} / {f('prior_entropy_band')}"


def _table(rows: dict[str, dict], names: list[str]) -> list[str]:
    header = (
        "| Model | Dice TC | Dice WT | Dice ET | Dice Avg | HD95 Avg (mm) ↓ | Δ Dice vs prior [95 % CI] | Wilcoxon p "
        "| Δ HD95 (mm) [95 % CI] | Wilcoxon p (HD95) |"
    )
    lines = [header, "|" + "---|" * 10]
    for n in names:
        if n not in rows:
            continue
        r = rows[n]
        delta = (
            "–"
            if r["prior"] is None
            else f"{r['delta_dice']:+.3f} [{r['delta_dice_ci95'][0]:+.3f}, {r['delta_dice_ci95'][1]:+.3f}]"
        )
        p = "–" if r["prior"] is None else f"{r['wilcoxon_p']:.3f}"
        dh = (
            "–"
            if r["prior"] is None
            else f"{r['delta_hd95']:+.2f} [{r['delta_hd95_ci95'][0]:+.2f}, {r['delta_hd95_ci95'][1]:+.2f}]"
        )
        ph = "–" if r["prior"] is None or "wilcoxon_p_hd95" not in r else f"{r['wilcoxon_p_hd95']:.3f}"
        lines.append(
            f"| {n} | {r['dice_TC']:.3f} | {r['dice_WT']:.3f} | {r['dice_ET']:.3f} | {r['mean_dice']:.3f} | {r['mean_hd95']:.2f} | {delta} | {p} | {dh} | {ph} |"
        )
    return lines


def markdown(record: dict) -> str:
    rows = {r["name"]: r for r in record["rows"]}
    lines = [
        f"# Refinement benchmark (seed {record['seed']}, phenotype {record['phenotype']}"
        + (f", {record['profile']} profile)" if record.get("profile", "classic") != "classic" else ")"),
        "",
        record["summary"],
        "",
    ]
    for title, names in TABLES.items():
        lines += [f"## {title}", "", *_table(rows, names), ""]
    if record["comparisons"]:
        lines += [
            "## Paired comparisons (conditioned vs scratch, highway alone vs full, control vs diffusion)",
            "",
            "| a | b | Δ Dice (b - a) [95 % CI] | Wilcoxon p | Δ HD95 (mm) [95 % CI] | Wilcoxon p (HD95) |",
            "|---|---|---|---|---|---|",
        ]
        for c in record["comparisons"]:
            hd95 = _ci(c, "hd95") if "delta_hd95_ci95" in c else f"{c['delta_hd95']:+.2f}"
            ph = f"{c['wilcoxon_p_hd95']:.3f}" if "wilcoxon_p_hd95" in c else "–"
            lines.append(
                f"| {c['a']} | {c['b']} | {_ci(c, 'dice')} | {c['wilcoxon_p']:.3f} | {hd95} | {ph} |"
            )
        lines.append("")
    lines += [
        "## Refiners",
        "",
        "| row | fusion weight | uncertainty AUROC: refiner std / prior entropy, brain; boundary band "
        "| validation Dice (prior -> refined) | out-of-fold cases |",
        "|---|---|---|---|---|",
    ]
    for row, d in record["refiners"].items():
        auc = _auroc_cell(d["uncertainty_auroc"])
        fw = "–" if d["fusion_weight"] is None else f"{d['fusion_weight']:.2f}"
        lines.append(
            f"| {row} | {fw} | {auc} | {d['prior_validation_dice']:.3f} -> {d['validation_dice']:.3f} | {d['num_training_cases']} |"
        )
    if record.get("learning_curves"):
        lines += ["", "## Learning curves (nnU-Net's validation pseudo-Dice, per epoch in the JSON)", ""]
        lines += rows_lib.curve_table(record["learning_curves"])
    lines += ["", "## Targets", "", "| target | met | value |", "|---|---|---|"]
    lines += [f"| {t['target']} | {'yes' if t['met'] else 'no'} | {t['value']} |" for t in record["targets"]]
    lines += [
        "",
        f"Protocol check: {'kept' if not record['protocol_problems'] else '; '.join(record['protocol_problems'])}.",
        "",
    ]
    lines += [
        "Stage wall times (s): " + ", ".join(f"{k} {v}" for k, v in record["stage_seconds"].items()),
        "",
    ]
    return "\n".join(lines)


def rerender(json_file: Path) -> None:
    """Rewrite the markdown and the targets of committed results from their JSON alone (no work folder):
    the numbers stay those measured; only the presentation and the target rules are today's."""
    record = json.loads(json_file.read_text())
    rows = {r["name"]: r for r in record["rows"]}
    record["targets"] = targets(rows, record["refiners"])
    write_results(record, json_file.with_suffix(""), markdown(record), record["protocol_problems"])


def write_report(b, commit: str) -> None:
    from nnunet_diffrefine.benchmark.protocol import kfold_splits

    a = b.args
    scores = evaluate_rows(b)
    rows = {row: row_record(row, scores, a.seed) for row in scores}
    details = refiner_details(b)
    splits = kfold_splits(b.training_cases(), a.folds)
    problems = protocol_problems(
        splits,
        b.test_cases(),
        {r: d["config"] for r, d in details.items()},
        {r: "none (nnU-Net's thresholding)" for r in rows},
    )
    record = {
        "seed": a.seed,
        "phenotype": a.phenotype,
        "profile": a.profile,
        "commit": commit,
        "dataset": b.name,
        "dataset_id": DATASET_ID,
        "settings": {
            **vars(a),
            "work": str(b.work),
            "cpu_schedule": b.schedule.to_json(),
            "num_training_cases": len(b.training_cases()),
            "num_test_cases": len(b.test_cases()),
        },
        "summary": (
            f"{len(b.training_cases())} training phantoms ({a.folds}-fold cross-validation, every model on the same folds) and "
            f"{len(b.test_cases())} held-out test phantoms "
            + (
                f"at {a.shape}³"
                if a.profile == "classic"
                else "of the realistic profile (56 x 68 x 60 at 2.5 mm)"
            )
            + f", seed {a.seed}, phenotype {a.phenotype}; base models "
            f"{b.schedule.epochs} x {b.schedule.iterations} iterations (CPU schedule: AdamW {b.schedule.adamw_lr}, stock SGD "
            f"{b.schedule.stock_sgd_lr}); refiners on the out-of-fold probabilities of all training cases; every row the fold "
            "ensemble on the test split, no post-processing; means over the test cases of the mean over TC/WT/ET. "
            "`python benchmarks/bench_refinement.py`."
        ),
        "rows": list(rows.values()),
        "comparisons": comparisons(scores, a.seed),
        "refiners": {r: {k: v for k, v in d.items() if k != "config"} for r, d in details.items()},
        "per_case": scores,
        "learning_curves": learning_curves(b),
        "protocol_problems": problems,
        "stage_seconds": b.stage.seconds,
    }
    record["targets"] = targets(rows, record["refiners"])
    write_results(record, Path(a.o), markdown(record), problems)
