"""The phantom refinement benchmark's Markdown page, from its results record
(:func:`~nnunet_diffrefine.benchmark.heldout.results_record`)."""

from __future__ import annotations

from nnunet_diffrefine.benchmark import rows as rows_lib
from nnunet_diffrefine.benchmark.heldout import TABLES, delta_ci


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
    shown: set[str] = set()
    for title, names in TABLES.items():
        present = [n for n in names if n in rows]
        if set(present) <= shown:  # nothing a table above did not show (e.g. a run without the ablation)
            continue
        shown.update(present)
        lines += [f"## {title}", "", *_table(rows, names), ""]
    if record["comparisons"]:
        lines += [
            "## Paired comparisons (conditioned vs scratch, highway alone vs full, control vs diffusion)",
            "",
            "| a | b | Δ Dice (b - a) [95 % CI] | Wilcoxon p | Δ HD95 (mm) [95 % CI] | Wilcoxon p (HD95) |",
            "|---|---|---|---|---|---|",
        ]
        for c in record["comparisons"]:
            hd95 = delta_ci(c, "hd95") if "delta_hd95_ci95" in c else f"{c['delta_hd95']:+.2f}"
            ph = f"{c['wilcoxon_p_hd95']:.3f}" if "wilcoxon_p_hd95" in c else "–"
            lines.append(
                f"| {c['a']} | {c['b']} | {delta_ci(c, 'dice')} | {c['wilcoxon_p']:.3f} | {hd95} | {ph} |"
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
        "Stage wall times (s): " + rows_lib.stage_times(record),
        "",
    ]
    return "\n".join(lines)
