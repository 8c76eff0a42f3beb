"""The voxelwise-classifier ceiling on the real BraTS cases and on every phantom phenotype, in one table.

Usage: python benchmarks/bench_voxel_ceiling.py [--real-root DIR] [--folds 3] [--num-phantoms 15]
       [--shape 48] [--seed 0] [-o benchmarks/results/voxel_ceiling]

A per-voxel Gaussian classifier (:mod:`nnunet_diffrefine.benchmark.ceiling`: QDA on the z-scored
channels and their 3x3x3 means, no spatial model) is cross-validated over the cases of each data set;
the table gives its mean Dice per region. A data set where it comes close to the trained networks
cannot show what a spatial model or a refiner adds. Real cases: the BraTS 2018 cases of
``--real-root`` (Menze et al., IEEE TMI 2015; Bakas et al., Scientific Data 2017), read at 2 mm (2x2x2
block means of the images, every second voxel of the labels; labels 1/2/4 -> 1/2/3). Phantoms:
``--num-phantoms`` per phenotype and profile, seed ``--seed``: the classic profile at ``--shape``³ (the
BraTS field of view), the realistic one at 2.5 mm on a crop around the brain (56 x 68 x 60 voxels). The
realistic profile's bars (per region within 0.10 of the real ceiling, ET the hardest region) are checked
and printed. Writes ``-o``.json and .md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_REAL_ROOT = REPO.parent / "shared" / "real" / "brats2018"
REAL_CHANNELS = ("t1", "t1ce", "t2", "flair")  # T1n, T1c, T2w, T2-FLAIR
PHENOTYPES = ("adult", "pediatric", "mixed")
BAR = 0.10  # the realistic profile's ceiling per region within this of the real cases'


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--real-root", default=str(DEFAULT_REAL_ROOT), help="folder of BraTS 2018 case folders")
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--num-phantoms", type=int, default=15)
    p.add_argument("--shape", type=int, default=48)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", default=str(REPO / "benchmarks" / "results" / "voxel_ceiling"))
    return p.parse_args()


def _block_mean(volume: np.ndarray, factor: int = 2) -> np.ndarray:
    z, y, x = (s // factor * factor for s in volume.shape)
    v = volume[:z, :y, :x].astype(np.float32)
    return v.reshape(z // factor, factor, y // factor, factor, x // factor, factor).mean((1, 3, 5))


def load_real_cases(root: Path):
    """The BraTS 2018 case folders of ``root`` as :class:`LabelledVolume` at 2 mm."""
    import SimpleITK as sitk

    from nnunet_diffrefine.benchmark.ceiling import LabelledVolume

    folders = sorted(p for p in root.glob("*") if p.is_dir()) if root.is_dir() else []
    if not folders:
        raise SystemExit(f"the real BraTS cases are missing: {root} holds no case folders (pass --real-root)")
    cases = []
    for folder in folders:

        def read(suffix: str, folder: Path = folder) -> np.ndarray:
            return sitk.GetArrayFromImage(sitk.ReadImage(str(folder / f"{folder.name}_{suffix}.nii.gz")))

        images = np.stack([_block_mean(read(c)) for c in REAL_CHANNELS])
        labels = read("seg")
        z, y, x = (s // 2 * 2 for s in labels.shape)
        labels = labels[:z:2, :y:2, :x:2].astype(np.uint8)
        labels[labels == 4] = 3
        cases.append(LabelledVolume(folder.name, images, labels))
    return cases


def phantom_cases(phenotype: str, n: int, shape, seed: int, profile: str = "classic", spacing=None):
    from nnunet_diffrefine.benchmark.ceiling import LabelledVolume
    from nnunet_diffrefine.data.synth import SynthConfig, generate_case

    config = SynthConfig(shape=tuple(shape), spacing=spacing, seed=seed, phenotype=phenotype, profile=profile)
    out = []
    for i in range(n):
        case = generate_case(config, i)
        out.append(LabelledVolume(case.case_id, case.images, case.labels))
    return out


def main() -> None:
    from nnunet_diffrefine.benchmark.ceiling import mean_regions, voxelwise_ceiling
    from nnunet_diffrefine.data.synth import brain_crop_grid
    from nnunet_diffrefine.utils.io import atomic_output_file, write_json

    realistic_shape, realistic_spacing = brain_crop_grid(2.5)  # 140 x 170 x 150 mm around the brain
    a = parse_args()
    sets = {"real BraTS 2018 (2 mm)": lambda: load_real_cases(Path(a.real_root))}
    for phenotype in PHENOTYPES:
        sets[f"phantoms, classic, {phenotype} ({a.shape}³)"] = lambda p=phenotype: phantom_cases(
            p, a.num_phantoms, (a.shape,) * 3, a.seed
        )
    for phenotype in PHENOTYPES:
        sets[f"phantoms, realistic, {phenotype} (2.5 mm)"] = lambda p=phenotype: phantom_cases(
            p, a.num_phantoms, realistic_shape, a.seed, "realistic", realistic_spacing
        )
    rows = []
    for name, load in sets.items():
        start = time.perf_counter()
        cases = load()
        scores = voxelwise_ceiling(cases, a.folds, seed=a.seed)
        rows.append(
            {
                "data": name,
                "num_cases": len(cases),
                **mean_regions(scores),
                "per_case": scores,
                "seconds": round(time.perf_counter() - start, 1),
            }
        )
        print(f"{name}: {mean_regions(scores)}", flush=True)
    real = rows[0]
    lines = [
        "# Voxelwise-classifier ceiling (QDA on z-scored channels and their 3x3x3 means, no spatial model)",
        "",
        f"{a.folds}-fold cross-validation over the cases of each data set; mean Dice over the held-out cases. "
        "`python benchmarks/bench_voxel_ceiling.py`. Real data: BraTS 2018 training cases (Menze et al., "
        "IEEE TMI 2015; Bakas et al., Scientific Data 2017).",
        "",
        "| data | cases | WT | TC | ET | mean | hardest region | mean - real |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        hardest = min(("WT", "TC", "ET"), key=lambda k: r[k])
        lines.append(
            f"| {r['data']} | {r['num_cases']} | {r['WT']:.3f} | {r['TC']:.3f} | {r['ET']:.3f} | {r['mean']:.3f} "
            f"| {hardest} | {r['mean'] - real['mean']:+.3f} |"
        )
    lines += ["", "## Realistic profile against the real cases", ""]
    bars = []
    for r in rows:
        if ", realistic, " not in r["data"]:
            continue
        gaps = {k: r[k] - real[k] for k in ("WT", "TC", "ET")}
        within = all(abs(g) <= BAR for g in gaps.values())
        et_hardest = min(("WT", "TC", "ET"), key=lambda k: r[k]) == "ET"
        bars.append({"data": r["data"], "gap": gaps, "within_bar": within, "et_hardest": et_hardest})
        lines.append(
            f"- {r['data']}: per-region gap to real "
            + ", ".join(f"{k} {g:+.3f}" for k, g in gaps.items())
            + f" (bar ±{BAR:.2f}: {'met' if within else 'MISSED'}); ET the hardest region: "
            + ("yes" if et_hardest else "NO")
        )
    record = {
        "settings": {k: v for k, v in vars(a).items() if k not in ("real_root", "o")},
        "realistic_grid": {"shape_zyx": list(realistic_shape), "spacing_zyx_mm": list(realistic_spacing)},
        "rows": rows,
        "realistic_bars": bars,
    }
    out = Path(a.o)
    write_json(record, out.with_suffix(".json"))
    with atomic_output_file(out.with_suffix(".md")) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
