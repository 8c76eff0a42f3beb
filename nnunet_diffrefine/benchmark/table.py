"""Benchmark tables and figures: Ke et al. Table 3 layout with mean +- std over folds (Evans et al. Table 2),
a CSV of every number, and a bar chart of per-region Dice with error bars (Evans et al. Figure 4)."""

from __future__ import annotations

import csv
import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nnunet_diffrefine.utils.io import atomic_output_file

if TYPE_CHECKING:
    from nnunet_diffrefine.evaluation.protocols import EvaluationProtocol


@dataclass
class FoldResult:
    """Mean metrics over the cases of one fold, per region name (e.g. ``{"TC": {"Dice": ...}}``)."""

    fold: int
    per_region: dict[str, dict[str, float]]
    seconds_per_case: float | None = None
    peak_rss_mb: float | None = None
    peak_gpu_mb: float | None = None


@dataclass
class ModelResult:
    name: str
    folds: list[FoldResult] = field(default_factory=list)

    def region_values(self, region: str, metric: str) -> np.ndarray:
        return np.array([f.per_region[region][metric] for f in self.folds], dtype=float)

    def averaged(self, regions: list[str], metric: str) -> np.ndarray:
        """Per fold: the metric averaged over ``regions`` (regions without a value, NaN, left out)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a fold where every region is NaN: NaN
            return np.array(
                [np.nanmean([f.per_region[r][metric] for r in regions]) for f in self.folds], dtype=float
            )


def _pm(values: np.ndarray, digits: int) -> str:
    values = values[~np.isnan(values)]
    if values.size == 0:
        return "n/a"
    return f"{values.mean():.{digits}f} ± {values.std():.{digits}f}"


def _resource(values: list[float | None], digits: int, reduce=np.mean) -> str:
    vals = [v for v in values if v is not None]
    return f"{reduce(vals):.{digits}f}" if vals else "–"


def markdown_table(results: list[ModelResult], regions: list[str], protocol: EvaluationProtocol) -> str:
    """Ke et al. Table 3 columns (Dice per region and average, HD95, then the protocol's columns: for
    BraTS 2023 sensitivity and precision), mean ± std over folds (population std), plus seconds per case
    and peak memory when prediction was run here; the protocol's note below."""
    columns = protocol.table_columns
    header = [
        "Model",
        *[f"Dice {r}" for r in regions],
        "Dice Avg",
        protocol.hd95_title,
        *[c.title for c in columns],
        "Folds",
        "s / case",
        "Peak RSS (MB)",
        "Peak GPU (MB)",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for m in results:
        row = [m.name]
        row += [_pm(m.region_values(r, "Dice"), 3) for r in regions]
        row += [_pm(m.averaged(regions, "Dice"), 3), _pm(m.averaged(regions, "HD95"), 2)]
        row += [_pm(m.averaged(regions, c.metric), c.digits) for c in columns]
        row += [
            str(len(m.folds)),
            _resource([f.seconds_per_case for f in m.folds], 2),
            _resource([f.peak_rss_mb for f in m.folds], 0, max),
            _resource([f.peak_gpu_mb for f in m.folds], 0, max),
        ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n\n" + protocol.table_note + "\n"


def csv_rows(results: list[ModelResult], regions: list[str]) -> str:
    metrics = sorted({k for m in results for f in m.folds for r in regions for k in f.per_region[r]})
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["model", "fold", "region", *metrics, "seconds_per_case", "peak_rss_mb", "peak_gpu_mb"])
    for m in results:
        for f in m.folds:
            for r in regions:
                writer.writerow(
                    [
                        m.name,
                        f.fold,
                        r,
                        *[f.per_region[r].get(k, "") for k in metrics],
                        f.seconds_per_case if f.seconds_per_case is not None else "",
                        f.peak_rss_mb if f.peak_rss_mb is not None else "",
                        f.peak_gpu_mb if f.peak_gpu_mb is not None else "",
                    ]
                )
    return buffer.getvalue()


def dice_bar_chart(
    results: list[ModelResult], regions: list[str], path: str | os.PathLike, title: str
) -> None:
    """Grouped bars of mean Dice per region and model, error bars = std over folds (Evans et al. Figure 4)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [*regions, "Avg"]
    width = 0.8 / max(1, len(results))
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(groups), 4.0), dpi=120)
    x = np.arange(len(groups))
    for i, m in enumerate(results):
        values = [m.region_values(r, "Dice") for r in regions] + [m.averaged(regions, "Dice")]
        means = [np.nanmean(v) for v in values]
        stds = [np.nanstd(v) for v in values]
        ax.bar(x + (i - (len(results) - 1) / 2) * width, means, width, yerr=stds, capsize=3, label=m.name)
    ax.set_xticks(x, groups)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("Dice (mean ± std over folds)")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    with atomic_output_file(Path(path)) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    plt.close(fig)
