"""Official BraTS protocol: our ``evaluate --protocol brats-official -np N`` against ``brats-evaluate``.

Usage: python benchmarks/bench_official_speed.py [--num-cases 8] [--shape 155 240 240] [--config gli]
       [-np 2] [--brats-evaluate PATH] [--work DIR] [-o benchmarks/results/official_speed]

Cases: synthetic phantoms on the BraTS grid (``nnunet-diffrefine synth``, BraTS 2024 GLI labels with
resection cavities) as references; predictions are the references with every region eroded or
dilated by a voxel and a spurious blob. Both commands score the same files; the wall time of each
whole command (imports included) is measured, and the per-case numbers are compared (they must
agree). Target (issue 15): ours at least as fast as ``brats-evaluate`` (ratio <= 1).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _setup import save_json

BIN = Path(sys.executable).parent


def make_cases(work: Path, num_cases: int, shape: tuple[int, int, int]) -> tuple[Path, Path]:
    """``work/ref`` (phantom labels) and ``work/pred`` (perturbed copies), BraTS-style file names."""
    import SimpleITK as sitk
    from scipy import ndimage

    from nnunet_diffrefine.data.synth import SynthConfig, synthesize_dataset

    ref, pred = work / "ref", work / "pred"
    existing = sorted(ref.glob("*.nii.gz")) if ref.is_dir() else []
    if len(existing) == num_cases and sitk.ReadImage(str(existing[0])).GetSize()[::-1] == tuple(shape):
        return ref, pred
    config = SynthConfig(
        shape=shape, seed=5, challenge="brats2024-gli", fluid_prob=0.5, second_lesion_prob=0.6
    )
    raw = synthesize_dataset(
        work / "raw", 901, "Speed", num_cases, 0, config, num_processes=2, overwrite=True
    )
    ref.mkdir(exist_ok=True)
    pred.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for i, label_file in enumerate(sorted((raw / "labelsTr").glob("*.nii.gz"))):
        image = sitk.ReadImage(str(label_file))
        labels = sitk.GetArrayFromImage(image)
        out = np.zeros_like(labels)
        for value in (2, 1, 3, 4):
            mask = labels == value
            mask = ndimage.binary_dilation(mask) if rng.random() < 0.5 else ndimage.binary_erosion(mask)
            out[mask] = value
        z, y, x = (int(rng.integers(20, s - 20)) for s in labels.shape)
        out[z - 3 : z + 3, y - 3 : y + 3, x - 3 : x + 3] = 3  # a spurious enhancing blob
        name = f"BraTS-GLI-{i:05d}-000.nii.gz"
        sitk.WriteImage(image, str(ref / name))
        predicted = sitk.GetImageFromArray(out)
        predicted.CopyInformation(image)
        sitk.WriteImage(predicted, str(pred / name))
    return ref, pred


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-cases", type=int, default=8)
    parser.add_argument("--shape", type=int, nargs=3, default=[155, 240, 240], metavar=("Z", "Y", "X"))
    parser.add_argument("--config", default="gli")
    parser.add_argument("-np", type=int, default=2, help="our worker processes (default: 2)")
    parser.add_argument("--brats-evaluate", default=str(BIN / "brats-evaluate"), help="the official command")
    parser.add_argument("--work", default=None, help="working folder (default: a temporary one)")
    parser.add_argument("-o", default=str(Path(__file__).parent / "results" / "official_speed"))
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_official_speed_"))
    work.mkdir(parents=True, exist_ok=True)
    ref, pred = make_cases(work, args.num_cases, tuple(args.shape))
    dataset = work / "dataset.json"
    dataset.write_text(json.dumps({"labels": {"background": 0}, "file_ending": ".nii.gz"}))

    official_json = work / "official.json"
    official_s = timed(
        [args.brats_evaluate, "--ref_path", str(ref), "--pred_path", str(pred), "--config", args.config]
        + ["--summary_json", str(official_json)]
    )
    ours = {}
    for np_ in sorted({1, args.np}):
        out = work / f"ours_np{np_}.json"
        ours[np_] = timed(
            [str(BIN / "nnunet-diffrefine"), "evaluate", str(ref), str(pred), "-djfile", str(dataset)]
            + [
                "-o",
                str(out),
                "--overwrite",
                "--protocol",
                "brats-official",
                "--official-config",
                args.config,
            ]
            + ["-np", str(np_)]
        )
    # the numbers must be the same: global DSC of every group and case
    theirs = {m["subject_name"]: m for m in json.loads(official_json.read_text())["metrics"]}
    summary = json.loads((work / f"ours_np{args.np}.json").read_text())
    worst = 0.0
    for case in summary["metric_per_case"]:
        name = Path(case["reference_file"]).name
        for group, values in case["metrics"].items():
            a, b = values["global_dsc"], theirs[name][group]["global_bin_dsc"]
            if not (math.isnan(a) and math.isnan(b)):
                worst = max(worst, abs(a - b))
    record = {
        "benchmark": "official BraTS protocol: nnunet-diffrefine evaluate --protocol brats-official vs brats-evaluate",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
        "cases": args.num_cases,
        "grid_zyx": list(args.shape),
        "config": args.config,
        "brats_evaluate_seconds": round(official_s, 2),
        "ours_seconds": {f"np{k}": round(v, 2) for k, v in ours.items()},
        "ratio": {f"np{k}": round(v / official_s, 3) for k, v in ours.items()},
        "max_abs_difference_global_dsc": worst,
        "target_ratio": 1.0,
    }
    out = Path(args.o)
    save_json(record, out.with_suffix(".json"))
    lines = [
        f"Official BraTS protocol, {args.num_cases} cases on the {'x'.join(map(str, args.shape))} grid "
        f"(config {args.config}; {record['machine']}; whole commands, imports included; "
        "`python benchmarks/bench_official_speed.py`).",
        "",
        "| command | seconds | ratio to brats-evaluate |",
        "|---|---|---|",
        f"| brats-evaluate | {official_s:.1f} | 1.00 |",
        *(
            f"| nnunet-diffrefine evaluate --protocol brats-official -np {k} | {v:.1f} | {v / official_s:.2f} |"
            for k, v in ours.items()
        ),
        "",
        f"Largest difference of a global DSC between the two: {worst:.1e}.",
    ]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
