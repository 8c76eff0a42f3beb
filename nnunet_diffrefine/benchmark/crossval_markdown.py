"""The cross-validated refinement benchmark's Markdown page, from its results record
(:func:`~nnunet_diffrefine.benchmark.crossval.results_record`)."""

from __future__ import annotations

from nnunet_diffrefine.benchmark.crossval import REGIONS
from nnunet_diffrefine.benchmark.reference import REFERENCE_STAGE
from nnunet_diffrefine.benchmark.rows import curve_table, stage_times

CITATION = (
    'Menze et al., "The Multimodal Brain Tumor Image Segmentation Benchmark (BRATS)", IEEE TMI 2015; '
    'Bakas et al., "Advancing The Cancer Genome Atlas glioma MRI collections with expert segmentation labels '
    'and radiomic features", Scientific Data 2017; Bakas et al., arXiv:1811.02629, 2018'
)
NO_HARM_DICE = -0.005
"""A refined row does no harm when its mean Dice is at most this much below its prior's."""


def _ci(value: float, ci: list[float], digits: int) -> str:
    return f"{value:+.{digits}f} [{ci[0]:+.{digits}f}, {ci[1]:+.{digits}f}]"


def _row_line(r: dict) -> str:
    cells = [r["name"], r["prior"] or "–"]
    cells += [f"{r[f'dice_{g}']:.3f}" for g in REGIONS] + [f"{r['mean_dice']:.3f}", f"{r['mean_hd95']:.2f}"]
    if r["prior"] is None:
        cells += ["–"] * 4
    else:
        cells += [
            _ci(r["delta_dice"], r["delta_dice_ci95"], 3),
            f"{r['wilcoxon_p']:.3f}",
            _ci(r["delta_hd95"], r["delta_hd95_ci95"], 2),
            f"{r['wilcoxon_p_hd95']:.3f}",
        ]
    return "| " + " | ".join(cells) + " |"


def _comparisons(record: dict) -> list[str]:
    lines = [
        "",
        "| a | b | Δ Dice (b - a) [95 % CI] | Wilcoxon p | Δ HD95 (mm) [95 % CI] | Wilcoxon p (HD95) |",
        "|---|---|---|---|---|---|",
    ]
    for c in record["comparisons"]:
        lines.append(
            f"| {c['a']} | {c['b']} | {_ci(c['delta_dice'], c['delta_dice_ci95'], 3)} | {c['wilcoxon_p']:.3f} "
            f"| {_ci(c['delta_hd95'], c['delta_hd95_ci95'], 2)} | {c['wilcoxon_p_hd95']:.3f} |"
        )
    return lines


def _refiners(record: dict) -> list[str]:
    lines = ["", "## Refiners (per fold: early-stopping validation Dice, prior -> refined)", ""]
    for row, folds in record["refiners"].items():
        shown = ", ".join(
            f"fold {f}: {d['prior_validation_dice']:.3f} -> {d['validation_dice']:.3f}"
            + (f" (w = {d['fusion_weight']:.2f})" if d["fusion_weight"] is not None else "")
            + (f", gate {d['gate']}" if d.get("gate") else "")
            for f, d in folds.items()
        )
        lines.append(f"- {row}: {shown}")
        lines += [f"  - fold {f}: {line}" for f, d in folds.items() for line in d.get("gate_decision") or []]
    return lines


def _targets(refined: list[dict]) -> list[str]:
    lines = ["", "## Targets", ""]
    for r in refined:
        harm = r["delta_dice"] >= NO_HARM_DICE
        gain = r["delta_dice_ci95"][0] > 0 or r["delta_hd95_ci95"][1] < 0
        lines.append(
            f"- {r['name']}: no harm (Δ Dice >= {NO_HARM_DICE}) {'met' if harm else 'MISSED'}; paired gain "
            f"(Dice CI above 0 or HD95 CI below 0) {'shown' if gain else 'not shown'}"
        )
    return lines


def _partial(record: dict) -> list[str]:
    """Rows with only some folds scored: which folds, and their mean Dice next to stock nnU-Net's on the
    same cases (no CI: a row is compared in the table only once every fold is scored)."""
    from nnunet_diffrefine.benchmark.crossval import STOCK

    lines = ["", "Rows in progress (not every fold trained yet; not in the table):", ""]
    stock = record["per_case"].get(STOCK, {})
    for row, folds in record["partial_per_case"].items():
        cases = [c for per_case in folds.values() for c in per_case]
        mean = sum(folds[f][c]["dice"] for f in folds for c in folds[f]) / len(cases)
        line = f"- {row}: fold {', '.join(folds)} of {len(record['settings']['folds'])} ({len(cases)} cases), mean Dice {mean:.3f}"
        if stock and row != STOCK:
            line += f"; {STOCK} on the same cases {sum(stock[c]['dice'] for c in cases) / len(cases):.3f}"
        lines.append(line)
    return lines


def _reference_line(record: dict) -> list[str]:
    ref = record["settings"].get("reference")
    if not ref:
        return []
    line = (
        f"Rows read from `{ref['file']}` (an earlier run of the same protocol on the same folds, commit "
        f"{ref['commit'][:7]}; their per-case scores, paired here by case): "
        + _rows_with_folds(ref["rows"], len(record["settings"]["folds"]))
        + "."
    )
    links = [ref]  # the reference's own reference, and so on
    while links[-1].get("via"):
        links.append(links[-1]["via"])
    if len(links) > 1:  # name, once each, the run that measured every row read through the chain
        num_folds = len(record["settings"]["folds"])
        for link, further in zip(links, links[1:] + [{"rows": {}}]):
            own = {
                row: [f for f in folds if f not in further["rows"].get(row, [])]
                for row, folds in link["rows"].items()
            }
            own = {row: folds for row, folds in own.items() if folds}
            if own:
                line += (
                    f" Measured by the run that wrote `{link['file']}` at {link['commit'][:7]}: "
                    + _rows_with_folds(own, num_folds)
                    + "."
                )
    return [line, ""]


def _rows_with_folds(rows: dict[str, list[int]], num_folds: int) -> str:
    """``row; row (fold 0, 2); ...``: the folds named where a row was read in part."""
    return "; ".join(
        row + ("" if len(folds) == num_folds else f" (fold {', '.join(map(str, folds))})")
        for row, folds in rows.items()
    )


def markdown(record: dict) -> str:
    """The page: the rows, the paired comparisons, each refiner's validation and gate, the base models'
    learning curves, the targets, the protocol check, stage wall times and the data's citation."""
    real = record["data"] == "brats2018-real"
    lines = [
        "# Refinement benchmark on real MRI (BraTS 2018, cross-validated stacking)"
        if real
        else "# Refinement benchmark on realistic phantoms (the real-data protocol, cross-validated stacking)",
        "",
        record["summary"],
        "",
        *_reference_line(record),
        "| Model | prior | Dice TC | Dice WT | Dice ET | Dice Avg | HD95 Avg (mm) ↓ | Δ Dice vs prior [95 % CI] "
        "| Wilcoxon p | Δ HD95 (mm) [95 % CI] | Wilcoxon p (HD95) |",
        "|" + "---|" * 11,
        *[_row_line(r) for r in record["rows"]],
    ]
    if record.get("partial_per_case"):
        lines += _partial(record)
    if record["comparisons"]:
        lines += _comparisons(record)
    if record["refiners"]:
        lines += _refiners(record)
    if record["learning_curves"]:
        lines += ["", "## Learning curves (nnU-Net's validation pseudo-Dice; per epoch in the JSON)", ""]
        partial = record.get("partial_per_case", {})
        named = {  # a row still missing folds: its curves are those of the folds it has
            (f"{row} (fold {', '.join(folds)} only)" if row in partial else row): folds
            for row, folds in record["learning_curves"].items()
        }
        lines += curve_table(named)
    refined = [r for r in record["rows"] if r["prior"] is not None]
    if refined:
        lines += _targets(refined)
    problems = record["protocol_problems"]
    lines += [
        "",
        f"Protocol check: {'kept' if not problems else '; '.join(problems)}.",
        "",
        "Stage wall times (s): "
        + stage_times(record, skip_suffix=REFERENCE_STAGE)
        + (
            f" (the referenced rows': in this page's JSON and in `{record['settings']['reference']['file']}`)"
            if record["settings"].get("reference")
            else ""
        ),
        "",
        f"Data: BraTS 2018 training cases ({CITATION})."
        if real
        else "Data: phantoms of nnunet-diffrefine's realistic synthesis profile.",
        "",
    ]
    return "\n".join(lines)
