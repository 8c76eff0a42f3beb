"""The current official BraTS scoring protocol (``BraTS-evaluation`` 0.0.10), computed with panoptica.

The official scorer is a set of panoptica configurations plus a parser; this module states the same
configuration in code (facts of the official configs ``gli``, ``ped``, ``mets``, ``MenRT``, ``GoAT``;
their YAML files are not copied) and reports what ``brats-parse-metrics seg`` reports, per label group:

- matching: connected components (cc3d, 26-neighbourhood) of prediction and reference, one-to-one
  maximum bipartite matching on DSC (any overlap, DSC >= 1e-6), every match a true positive;
- ``tp fp fn prec rec f1`` (f1: panoptica's recognition quality ``tp / (tp + (fp + fn) / 2)``);
- ``global_dsc global_nsd global_hd95``: the binary masks of the group; an infinite HD95 (no overlap,
  one side empty) is written as 373 mm;
- ``lesionwise_{dsc,nsd,hd95}_{mean,std}``: over the matched lesions only (missed and spurious
  lesions do not lower them; no lesion matched: 0, 0, inf);
- both masks empty: every metric NaN (left out of the means), not a perfect score.

As the official scorer, which reads files with SimpleITK: the voxel spacing handed to panoptica is
the image's ``GetSpacing()`` (x, y, z) next to an array in (z, y, x) order, the global NSD and HD95
are computed in voxel units (tolerance 0.5 voxel), and the lesion-wise NSD tolerance is the smallest
spacing. These quirks matter for anisotropic images only; they are reproduced so that the numbers
are the official ones (``tests/test_official_protocol.py`` compares with the package).

Metastases (configuration ``mets``): the official MET leaderboard parses the same evaluation with
``brats-parse-metrics mets`` (:data:`METS_COLUMNS`): reference lesions of at least 20 mm³ are large;
the lesion-wise means run over the large lesions, a missed large lesion and every false-positive
component counting as DSC 0, NSD 0, HD95 373 mm; a lesion counts as detected when its matched DSC is
at least 0.1 (large and small lesions separately: tp, fp, fn, precision, recall, F1 = 2tp / (2tp + fp
+ fn)); no large lesion (or no reference lesion): the lesion-wise means are NaN.
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from collections.abc import Mapping
from functools import cache

import numpy as np

from nnunet_diffrefine.errors import InputError

HD95_MISSING_MM = 373.0
"""The official parser's HD95 for a structure with no overlap: the diagonal of the SRI-24 grid."""

# config -> label groups (name, labels, merged into one binary mask)
OFFICIAL_GROUPS: dict[str, tuple[tuple[str, tuple[int, ...], bool], ...]] = {
    "gli": (
        ("snfh", (2,), False),
        ("et", (3,), False),
        ("netc", (1,), False),
        ("rc", (4,), False),
        ("tc", (1, 3), True),
        ("wt", (1, 2, 3), True),
    ),
    "ped": (
        ("et", (1,), False),
        ("netc", (2,), False),
        ("cc", (3,), False),
        ("ed", (4,), False),
        ("tc", (1, 2, 3), True),
        ("wt", (1, 2, 3, 4), True),
    ),
    "mets": (("et", (3,), False), ("rc", (4,), False), ("tc", (1, 3), True), ("wt", (1, 2, 3), True)),
    "MenRT": (("gtv", (1,), False),),
    "GoAT": (("et", (3,), False), ("tc", (1, 3), True), ("wt", (1, 2, 3), True)),
}
OFFICIAL_GROUPS["MenPre"] = OFFICIAL_GROUPS["GoAT"]

COLUMNS: tuple[str, ...] = (
    "all_instance_tp",
    "all_instance_fp",
    "all_instance_fn",
    "all_instance_prec",
    "all_instance_rec",
    "all_instance_f1",
    "global_dsc",
    "global_nsd",
    "global_hd95",
    "lesionwise_dsc_mean",
    "lesionwise_dsc_std",
    "lesionwise_nsd_mean",
    "lesionwise_nsd_std",
    "lesionwise_hd95_mean",
    "lesionwise_hd95_std",
)
"""The columns ``brats-parse-metrics seg`` writes per label group, in its order."""

METS_COLUMNS: tuple[str, ...] = (
    *COLUMNS[:6],
    *(f"large_instance_{k}" for k in ("tp", "fp", "fn", "prec", "rec", "f1")),
    "lesionwise_dsc_mean",
    "lesionwise_dsc_std",
    "lesionwise_hd95_mean",
    "lesionwise_hd95_std",
    "lesionwise_nsd_mean",
    "lesionwise_nsd_std",
    *(f"small_instance_{k}" for k in ("tp", "fn", "fp", "prec", "rec", "f1")),
    "global_dsc",
    "global_nsd",
    "global_hd95",
)
"""The columns ``brats-parse-metrics mets`` writes per label group, in its order."""

CROP_MARGIN_VOXELS = 2
"""Background kept around the foreground when a case is cropped for scoring (1 suffices: a surface voxel
is a foreground voxel with a background neighbour)."""

METS_LARGE_MM3 = 20.0
METS_DETECTED_DSC = 0.1


def columns_of(config: str) -> tuple[str, ...]:
    """The official parser's columns for ``config`` (``mets``: the metastasis parser's)."""
    return METS_COLUMNS if config == "mets" else COLUMNS


_FROM_PANOPTICA = {
    "all_instance_tp": "tp",
    "all_instance_fp": "fp",
    "all_instance_fn": "fn",
    "all_instance_prec": "prec",
    "all_instance_rec": "rec",
    "all_instance_f1": "rq",
    "global_dsc": "global_bin_dsc",
    "global_nsd": "global_bin_nsd",
    "global_hd95": "global_bin_hd95",
    "lesionwise_dsc_mean": "sq_dsc",
    "lesionwise_dsc_std": "sq_dsc_std",
    "lesionwise_nsd_mean": "sq_nsd",
    "lesionwise_nsd_std": "sq_nsd_std",
    "lesionwise_hd95_mean": "sq_hd95",
    "lesionwise_hd95_std": "sq_hd95_std",
}


def _panoptica():
    try:
        import panoptica
    except ImportError as e:  # an optional dependency only for this protocol
        raise InputError(
            f"--protocol brats-official needs panoptica, a dependency of nnunet-diffrefine that does not "
            f"import here ({e}); reinstall nnunet-diffrefine"
        ) from None
    panoptica.disable_citation_reminder()
    return panoptica


@cache
def official_evaluator(config: str):
    """A panoptica evaluator configured as the official scorer's ``config`` (see the module docstring)."""
    if config not in OFFICIAL_GROUPS:
        raise InputError(
            f"unknown official configuration {config!r}; choose one of {', '.join(OFFICIAL_GROUPS)}"
        )
    pa = _panoptica()
    from panoptica.utils import (
        EdgeCaseHandler,
        EdgeCaseResult,
        LabelGroup,
        LabelMergeGroup,
        SegmentationClassGroups,
    )
    from panoptica.utils.edge_case_handling import MetricZeroTPEdgeCaseHandling

    metrics = [pa.Metric.DSC, pa.Metric.NSD, pa.Metric.HD95]
    overlap = MetricZeroTPEdgeCaseHandling(
        no_instances_result=EdgeCaseResult.NAN, default_result=EdgeCaseResult.ZERO
    )
    distance = MetricZeroTPEdgeCaseHandling(
        no_instances_result=EdgeCaseResult.NAN, default_result=EdgeCaseResult.INF
    )
    edge_cases = EdgeCaseHandler(
        listmetric_zeroTP_handling={pa.Metric.DSC: overlap, pa.Metric.NSD: overlap, pa.Metric.HD95: distance},
        empty_list_std=EdgeCaseResult.NAN,
    )
    with contextlib.redirect_stdout(io.StringIO()):  # it prints a note on labels shared by two groups
        groups = SegmentationClassGroups(
            {
                name: (LabelMergeGroup if merged else LabelGroup)(list(labels), single_instance=False)
                for name, labels, merged in OFFICIAL_GROUPS[config]
            }
        )
        return pa.Panoptica_Evaluator(
            expected_input=pa.InputType.SEMANTIC,
            instance_approximator=pa.ConnectedComponentsInstanceApproximator(),
            instance_matcher=pa.MaxBipartiteMatching(matching_metric=pa.Metric.DSC, matching_threshold=1e-6),
            segmentation_class_groups=groups,
            instance_metrics=metrics,
            global_metrics=metrics,
            edge_case_handler=edge_cases,
            decision_metric=None,
            decision_threshold=None,
        )


def official_labels(config: str) -> set[int]:
    """Label values the configuration's groups define (any other label makes the official scorer fail)."""
    return {v for _, labels, _ in OFFICIAL_GROUPS[config] for v in labels}


def foreground_box(*label_maps: np.ndarray, margin: int = CROP_MARGIN_VOXELS) -> tuple[slice, ...] | None:
    """The box (one slice per axis) around every non-zero voxel of ``label_maps`` (same shape), widened by
    ``margin`` voxels and clipped to the array; None when all are empty."""
    foreground = np.logical_or.reduce([m != 0 for m in label_maps])
    box = []
    for axis in range(foreground.ndim):
        hit = np.flatnonzero(foreground.any(axis=tuple(a for a in range(foreground.ndim) if a != axis)))
        if hit.size == 0:
            return None
        box.append(
            slice(max(int(hit[0]) - margin, 0), min(int(hit[-1]) + 1 + margin, foreground.shape[axis]))
        )
    return tuple(box)


def score_case_official(
    prediction: np.ndarray,
    reference: np.ndarray,
    spacing_xyz: tuple[float, ...],
    config: str,
    crop: bool = True,
) -> dict[str, dict[str, float]]:
    """Official metrics of one case: label group -> column (:data:`COLUMNS`) -> value.

    ``prediction``, ``reference``: label maps ``(Z, Y, X)`` as SimpleITK reads them; ``spacing_xyz``: the
    image's ``GetSpacing()`` (mm), handed over in that order as the official scorer does. ``crop``: score
    the box around both foregrounds (:func:`foreground_box`) instead of the whole grid; every metric is
    the same (components, overlaps and surface distances only involve voxels within a voxel of the
    foreground), and less background is handled (a 240 x 240 x 155 BraTS case: 2.1 -> 1.4 s).
    """
    if prediction.shape != reference.shape:
        raise InputError(f"prediction shape {prediction.shape} differs from the reference {reference.shape}")
    allowed = official_labels(config) | {0}
    for what, array in (("prediction", prediction), ("reference", reference)):
        unknown = sorted(set(np.unique(array).tolist()) - allowed)
        if unknown:
            raise InputError(
                f"the {what} holds label(s) {unknown}, which the official {config} configuration does not define"
            )
    box = foreground_box(prediction, reference) if crop else None
    if box is not None:
        prediction, reference = prediction[box], reference[box]
    evaluator = official_evaluator(config)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore", UserWarning)  # the global NSD's 0.5-voxel tolerance, as official
        results = evaluator.evaluate(
            prediction.astype(np.uint8),
            reference.astype(np.uint8),
            voxelspacing=tuple(float(s) for s in spacing_xyz),
        )
    out: dict[str, dict[str, float]] = {}
    for group, result in results.items():
        values = result.to_dict(config == "mets")
        row = {column: float(values.get(key, math.nan)) for column, key in _FROM_PANOPTICA.items()}
        if math.isinf(row["global_hd95"]):
            row["global_hd95"] = HD95_MISSING_MM
        if config == "mets":
            row.update(_mets_lesions(values))
        out[group] = {c: row[c] for c in columns_of(config)}
    return out


def _rates(tp: int, fp: int, fn: int) -> dict[str, float]:
    """Precision, recall and F1 = 2tp / (2tp + fp + fn), 0 where a denominator is 0 (as the parser)."""
    return {
        "prec": tp / (tp + fp) if tp + fp else 0.0,
        "rec": tp / (tp + fn) if tp + fn else 0.0,
        "f1": 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else 0.0,
    }


def _mets_lesions(values: Mapping) -> dict[str, float]:
    """The metastasis parser's lesion columns from panoptica's per-reference-lesion rows."""
    fp = int(values.get("fp", 0))
    large = {"dsc": [], "nsd": [], "hd95": []}
    counts = {"large_tp": 0, "large_fn": 0, "small_tp": 0, "small_fn": 0}
    has_large = has_small = False
    for lesion in values.get("reference_instances", []):
        if lesion.get("volume") is None:
            continue
        is_large = lesion["volume"] >= METS_LARGE_MM3
        has_large, has_small = has_large or is_large, has_small or not is_large
        size = "large" if is_large else "small"
        if lesion.get("is_matched") == 1:
            dsc = lesion.get("sq_dsc")
            if is_large:
                large["dsc"].append(dsc)
                large["nsd"].append(lesion.get("sq_nsd"))
                large["hd95"].append(lesion.get("sq_hd95"))
            if dsc is not None:
                counts[f"{size}_tp" if dsc >= METS_DETECTED_DSC else f"{size}_fn"] += 1
            elif is_large:
                counts["large_fn"] += 1
        else:
            counts[f"{size}_fn"] += 1
            if is_large:
                large["dsc"].append(0.0)
                large["nsd"].append(0.0)
                large["hd95"].append(HD95_MISSING_MM)
    for key, penalty in (("dsc", 0.0), ("nsd", 0.0), ("hd95", HD95_MISSING_MM)):
        large[key].extend([penalty] * fp)  # every false-positive component, large or small
    out: dict[str, float] = {}
    for size, present in (("large", has_large), ("small", has_small)):
        tp, fn = counts[f"{size}_tp"], counts[f"{size}_fn"]
        rates = _rates(tp, fp, fn) if present else dict.fromkeys(("prec", "rec", "f1"), math.nan)
        for key, value in {"tp": tp, "fp": fp, "fn": fn, **rates}.items():
            out[f"{size}_instance_{key}"] = float(value) if present else math.nan
    if not has_large or int(values.get("n_ref_instances", 0)) == 0:
        for key in ("dsc", "hd95", "nsd"):
            out[f"lesionwise_{key}_mean"] = out[f"lesionwise_{key}_std"] = math.nan
        return out
    finite_hd95 = [v for v in large["hd95"] if v is not None and not math.isinf(v)]
    for key, kept, empty in (
        ("dsc", large["dsc"], 0.0),
        ("nsd", large["nsd"], 0.0),
        ("hd95", finite_hd95, None),
    ):
        values_ = np.array(kept, dtype=np.float64)
        if values_.size:
            out[f"lesionwise_{key}_mean"], out[f"lesionwise_{key}_std"] = (
                float(values_.mean()),
                float(values_.std()),
            )
        else:  # no finite HD95 left: the parser's maximum penalty
            out[f"lesionwise_{key}_mean"] = HD95_MISSING_MM if empty is None else empty
            out[f"lesionwise_{key}_std"] = 0.0
    return out


def mean_official(per_case: Mapping[str, Mapping[str, Mapping[str, float]]]) -> dict[str, dict[str, float]]:
    """Per group and column the mean over cases, NaN left out (as the official parser's pandas mean;
    an infinite value makes the mean infinite); NaN when every case is NaN."""
    cases = list(per_case.values())
    if not cases:
        return {}
    out: dict[str, dict[str, float]] = {}
    for group in cases[0]:
        out[group] = {}
        for column in cases[0][group]:
            values = np.array([c[group][column] for c in cases], dtype=np.float64)
            values = values[~np.isnan(values)]
            out[group][column] = float(values.mean()) if values.size else math.nan
    return out
