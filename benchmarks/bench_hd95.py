"""Speed and exactness of our HD95 (BraTS / DeepMind definition) on 240 x 240 x 155 cases.

Usage: python benchmarks/bench_hd95.py [--prediction perturbed|untrained] [--cases 3] [--repeats 3]
       [-o benchmarks/results/hd95_speed.json]

For each case: a synthetic reference label map (``generate_case``, BraTS grid at 1 mm) and a prediction:
``perturbed`` (a plausible one) shifts it, dilates the whole tumor and erodes the enhancing tumor;
``untrained`` (what a model after a few iterations writes) is speckle of random labels over 15 % of
the brain, most of its surfels far from the reference surface (there ours also reports its time without
the distance-transform path, lookups and k-d tree only: ``ours_lookup_tree_s``). Times
``nnunet_diffrefine.evaluation.hd95`` over WT/TC/ET against MONAI's
``compute_hausdorff_distance(percentile=95, spacing=...)`` over the same three regions (best of
``--repeats``, warm), and reports the largest absolute difference of our HD95 from a reference
implementation of DeepMind's definition written differently (codes by ``ndimage.correlate`` with
DeepMind's kernel, MONAI's public float32 area table, distances from a distance transform of the whole grid where
ours uses a k-d tree on the cropped masks) and
from MONAI's value (which differs by definition: unweighted edge voxels instead of surfel areas).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from _setup import machine, save_json
from monai.metrics import compute_hausdorff_distance
from monai.metrics.utils import create_table_neighbour_code_to_surface_area
from scipy import ndimage

from nnunet_diffrefine.data.brats import REGIONS
from nnunet_diffrefine.data.synth import SynthConfig, generate_case
from nnunet_diffrefine.evaluation import evaluate_arrays, hd95, region_mask

SHAPE = (155, 240, 240)


def shifted(labels: np.ndarray, offsets: tuple[int, int, int]) -> np.ndarray:
    """``labels`` moved by ``offsets`` voxels, zero-filled (no wrap-around)."""
    out = np.zeros_like(labels)
    src = tuple(slice(max(-o, 0), n - max(o, 0)) for o, n in zip(offsets, labels.shape))
    dst = tuple(slice(max(o, 0), n - max(-o, 0)) for o, n in zip(offsets, labels.shape))
    out[dst] = labels[src]
    return out


def perturbed(labels: np.ndarray, k: int) -> np.ndarray:
    """A plausible prediction: shifted 1-3 voxels, whole tumor dilated, enhancing tumor eroded."""
    pred = shifted(labels, (1 + k % 3, -1 - k % 2, 1))
    grown = ndimage.binary_dilation(pred > 0, iterations=2) & (pred == 0)
    pred[grown] = 2
    et = pred == 3
    pred[et & ~ndimage.binary_erosion(et)] = 1
    return pred


def untrained(labels: np.ndarray, brain: np.ndarray, k: int) -> np.ndarray:
    """Speckle: random labels 1-3 on 15 % of the ``brain`` voxels (seeded by ``k``)."""
    rng = np.random.default_rng(100 + k)
    speckle = brain & (rng.random(labels.shape) < 0.15)
    pred = np.zeros_like(labels)
    pred[speckle] = rng.integers(1, 4, size=int(speckle.sum()))
    return pred


def without_transform(preds: list, refs: list, spacing: tuple) -> list[float]:
    """Ours with the distance-transform path priced out (lookups and k-d tree only)."""
    from nnunet_diffrefine.evaluation import surface

    saved = surface._TRANSFORM_COST_PER_VOXEL
    surface._TRANSFORM_COST_PER_VOXEL = float("inf")
    try:
        return ours_hd95(preds, refs, spacing)
    finally:
        surface._TRANSFORM_COST_PER_VOXEL = saved


def reference_hd95(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, float, float]) -> float:
    """DeepMind's definition, implemented differently from ours (see the module docstring)."""
    table = create_table_neighbour_code_to_surface_area(spacing)[0].numpy().astype(np.float64)
    kernel = np.array([[[128, 64], [32, 16]], [[8, 4], [2, 1]]])
    surfels = []
    for mask in (pred, ref):
        padded = np.zeros(np.array(mask.shape) + 1, np.uint8)  # zero row at the far end of each axis
        padded[:-1, :-1, :-1] = mask
        codes = ndimage.correlate(padded, kernel, mode="constant", cval=0)
        border = (codes != 0) & (codes != 255)
        surfels.append((border, table[codes[border]]))
    (pred_border, pred_areas), (ref_border, ref_areas) = surfels

    def percentile(distances: np.ndarray, areas: np.ndarray) -> float:
        order = np.lexsort((areas, distances))
        cumulative = np.cumsum(areas[order]) / np.sum(areas)
        return float(distances[order][min(int(np.searchsorted(cumulative, 0.95)), len(order) - 1)])

    return max(
        percentile(ndimage.distance_transform_edt(~ref_border, sampling=spacing)[pred_border], pred_areas),
        percentile(ndimage.distance_transform_edt(~pred_border, sampling=spacing)[ref_border], ref_areas),
    )


def best_time(repeats: int, fn, *args) -> tuple[float, object]:
    """Shortest wall time of ``fn(*args)`` over ``repeats`` calls, and its value."""
    best, value = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn(*args)
        best = min(best, time.perf_counter() - start)
    return best, value


def ours_hd95(preds: list, refs: list, spacing: tuple) -> list[float]:
    return [hd95(p, r, spacing) for p, r in zip(preds, refs)]


def monai_hd95(y_pred: torch.Tensor, y_ref: torch.Tensor, spacing: tuple) -> list[float]:
    return compute_hausdorff_distance(y_pred, y_ref, include_background=True, percentile=95, spacing=spacing)[
        0
    ].tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prediction", choices=("perturbed", "untrained"), default="perturbed")
    parser.add_argument("--cases", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("-o", default=str(Path(__file__).parent / "results" / "hd95_speed.json"))
    args = parser.parse_args()

    names = list(REGIONS)
    per_case, ours_total, monai_total, eval_total = [], 0.0, 0.0, 0.0
    max_ref_diff, max_monai_diff = 0.0, 0.0
    for k in range(args.cases):
        start = time.perf_counter()
        case = generate_case(SynthConfig(shape=SHAPE, seed=k), 0)
        generate_s = time.perf_counter() - start
        ref_labels, spacing = case.labels, tuple(float(s) for s in case.spacing)
        if args.prediction == "untrained":
            pred_labels = untrained(ref_labels, case.images[0] > 0, k)
        else:
            pred_labels = perturbed(ref_labels, k)
        refs = [region_mask(ref_labels, REGIONS[n]) for n in names]
        preds = [region_mask(pred_labels, REGIONS[n]) for n in names]
        y_pred = torch.from_numpy(np.stack(preds)[None])
        y_ref = torch.from_numpy(np.stack(refs)[None])

        ours_hd95(preds[:1], refs[:1], spacing)  # warm-up: loads the normals table
        monai_hd95(y_pred, y_ref, spacing)
        ours_s, ours = best_time(args.repeats, ours_hd95, preds, refs, spacing)
        if args.prediction == "untrained":
            lookup_tree_s, lookup_tree = best_time(args.repeats, without_transform, preds, refs, spacing)
            assert lookup_tree == ours, "every path gives the same distances"
        monai_s, monai = best_time(args.repeats, monai_hd95, y_pred, y_ref, spacing)
        regions = [REGIONS[n] for n in names]
        eval_s, _ = best_time(1, evaluate_arrays, pred_labels, ref_labels, spacing, regions)
        reference = [reference_hd95(p, r, spacing) for p, r in zip(preds, refs)]
        ours_total += ours_s
        monai_total += monai_s
        eval_total += eval_s
        max_ref_diff = max(max_ref_diff, *(abs(a - b) for a, b in zip(ours, reference)))
        max_monai_diff = max(max_monai_diff, *(abs(a - b) for a, b in zip(ours, monai)))
        per_case.append(
            {
                "case": case.case_id,
                "seed": k,
                "generate_s": round(generate_s, 1),
                "volumes_cm3": {
                    n: round(float(r.sum()) * np.prod(spacing) / 1000, 2) for n, r in zip(names, refs)
                },
                "hd95_ours_mm": dict(zip(names, ours)),
                "hd95_reference_mm": dict(zip(names, reference)),
                "hd95_monai_mm": dict(zip(names, monai)),
                "ours_s": round(ours_s, 4),
                "monai_s": round(monai_s, 4),
                **({"ours_lookup_tree_s": round(lookup_tree_s, 4)} if args.prediction == "untrained" else {}),
                "all_metrics_s": round(eval_s, 4),
            }
        )
        print(f"case {k}: ours {ours_s:.3f} s, MONAI {monai_s:.3f} s, HD95 {[round(v, 3) for v in ours]}")

    ratio = monai_total / ours_total
    result = {
        "benchmark": "HD95 over WT/TC/ET: ours (BraTS/DeepMind definition) vs MONAI compute_hausdorff_distance",
        "prediction": args.prediction,
        "shape_zyx": list(SHAPE),
        "cases": args.cases,
        "repeats": args.repeats,
        "ours_total_s": round(ours_total, 3),
        "monai_total_s": round(monai_total, 3),
        "speed_ratio_monai_over_ours": round(ratio, 2),
        "target": "at least 2x faster than MONAI",
        "meets_target": bool(ratio >= 2.0),
        "all_metrics_per_case_s": round(eval_total / args.cases, 3),
        "max_abs_diff_vs_reference_mm": max_ref_diff,
        "max_abs_diff_vs_monai_mm": max_monai_diff,
        "per_case": per_case,
        "machine": machine(),
    }
    save_json(result, Path(args.o))
    print(json.dumps({k: v for k, v in result.items() if k != "per_case"}, indent=2))


if __name__ == "__main__":
    main()
