"""summary.json in nnU-Net's layout (read back by nnU-Net's ``load_summary_json``) and summary.csv.

summary.json::

    {"metric_per_case": [{"prediction_file", "reference_file", "metrics": {KEY: {METRIC: value}}}],
     "mean": {KEY: {METRIC: nanmean over cases}},
     "foreground_mean": {METRIC: mean over KEYs of "mean"},
     "missing_predictions": [case, ...],          # scored as empty predictions
     "settings": {...}}                           # convention, penalty, lesion parameters, region names

``KEY`` is nnU-Net's key: ``str(label)`` for labels, ``str(tuple)`` for regions, e.g. ``"(1, 2, 3)"``;
the metrics are :data:`nnunet_diffrefine.evaluation.case.METRIC_NAMES`. summary.csv has one row per
case and region: ``case, region`` (WT/TC/ET or the dataset.json name) and every metric.
"""

from __future__ import annotations

import csv
import os
import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from nnunet_diffrefine.evaluation.case import METRIC_NAMES
from nnunet_diffrefine.evaluation.overlap import Region
from nnunet_diffrefine.utils.io import atomic_output_file


def mean_metrics(
    metric_per_case: Sequence[Mapping], regions: Sequence[Region], names: Sequence[str] = METRIC_NAMES
) -> tuple[dict[Region, dict[str, float]], dict[str, float]]:
    """nnU-Net's aggregation of the metrics ``names``: per region the NaN-ignoring mean over cases, then
    the plain mean of those over the foreground regions (``foreground_mean``)."""
    means: dict[Region, dict[str, float]] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns give NaN, as in nnU-Net
        for region in regions:
            means[region] = {
                name: float(np.nanmean([float(case["metrics"][region][name]) for case in metric_per_case]))
                for name in names
            }
        foreground = [r for r in regions if r not in (0, "0")]
        foreground_mean = {name: float(np.mean([means[r][name] for r in foreground])) for name in names}
    return means, foreground_mean


def write_summary_json(summary: dict, path: str | os.PathLike) -> None:
    """Write ``summary`` (region objects as keys, like nnU-Net's results) with nnU-Net's own
    ``save_summary_json`` (string keys, sorted, indented), atomically."""
    from nnunetv2.evaluation.evaluate_predictions import save_summary_json

    with atomic_output_file(path) as tmp:
        save_summary_json(summary, str(tmp))


def summary_rows(
    case_ids: Sequence[str],
    metric_per_case: Sequence[Mapping],
    regions: Sequence[Region],
    region_names: Mapping[Region, str],
    names: Sequence[str] = METRIC_NAMES,
) -> tuple[list[str], list[list]]:
    """summary.csv's ``(header, rows)``: one row per case and region, ``case, region, <every metric>``."""
    rows = [
        [case_id, region_names[region], *(case["metrics"][region][name] for name in names)]
        for case_id, case in zip(case_ids, metric_per_case)
        for region in regions
    ]
    return ["case", "region", *names], rows


def write_csv_rows(header: Sequence[str], rows: Sequence[Sequence], path: str | os.PathLike) -> None:
    """The one CSV writer of the evaluation: ``header`` then ``rows``, atomically."""
    with atomic_output_file(path) as tmp:
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(rows)
