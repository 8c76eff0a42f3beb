"""Refinement cost per case next to the base model's own nnU-Net prediction of the same case (CPU).

Usage: python benchmarks/bench_refine_cost.py [--work DIR] [--shape 155 240 240] [--num-test 1]
       [-device cpu] [--prior-model MODEL_FOLDER [--prior-fold 0]] [--bases MedNeXt Swin-UNETR]
       [--refiners corrdiff ddpm medsegdiff] [--set inference_steps=5] [-o benchmarks/results/refine_cost]
       [--render-only]

Targets (issue 13): with a trained prior, CorrDiff costs at most 0.25x its base model's prediction
(MedNeXt, CoMNeT), the conditioned DDPM and MedSegDiff at most 0.5x their base model's (Swin-UNETR),
without test-time mirroring, at a peak resident memory of at most 4 GB; the unconditional (scratch)
baselines are reported without a target.

What runs: a synthetic BraTS-like dataset on the given grid (default: the BraTS 240x240x155 1 mm
grid), nnU-Net's planning and preprocessing, our MedNeXt and Swin-UNETR plans presets (default sizes,
not the small-CPU ones), and then, per base model, nnU-Net's own prediction of the test case
(preprocessing, sliding window with 50 % overlap, export with probabilities; no mirroring) followed
by ``refine_folder`` with each refiner at its default inference settings and the patch size the
trainers give it (the base model's patch rounded down to what the refiner's networks take). The
networks carry freshly initialised weights: for these networks the cost of a forward pass does not
depend on the values of the weights, and training them here would take hours. What does depend on
the prior is the conditioned refiners' region of interest, so they refine the probabilities of a
trained model: with ``--prior-model`` (an nnU-Net model folder trained on the same labels and
channels, e.g. the refinement benchmark's MedNeXt; it predicts the test cases with its own
preprocessing and resampling, so a model trained on coarse phantoms exports probabilities on this
grid), else the reference regions blurred by a Gaussian (sigma 1.5 voxels; the earlier measurement,
whose region of interest is unrealistically tight). Per case the region of interest each conditioned
refiner works on is reported (its box on the exported grid, voxels and share of the volume). Refinement seconds
cover what ``nnunet-diffrefine refine`` spends on a case (preprocessing, moving the probabilities to
the preprocessed grid and back, the refiner) except writing its files.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from _setup import save_json, workspace

DATASET_ID, DATASET_NAME = 961, "Dataset961_BenchRefineCost"
BASES = {  # base model -> (trainer, plans, preset architecture or None, refiners)
    "nnU-Net (stock)": ("nnUNetTrainer", "nnUNetPlans", None, ()),
    "MedNeXt": ("MedNeXtTrainer", "nnUNetPlansMedNeXt", "mednext", ("corrdiff",)),
    "Swin-UNETR": (
        "SwinUNETRTrainer",
        "nnUNetPlansSwinUNETR",
        "swinunetr",
        ("ddpm", "ddpm_scratch", "medsegdiff", "medsegdiff_scratch"),
    ),
}
TARGET_RATIO = {"corrdiff": 0.25, "ddpm": 0.5, "medsegdiff": 0.5}  # of the base model's prediction
TARGET_PEAK_MB = 4000


def _untrained_model_folder(results: Path, trainer: str, plans: str, preprocessed: Path) -> Path:
    """``TRAINER__PLANS__3d_fullres`` with plans.json, dataset.json and a fold_0 checkpoint of fresh weights."""
    import torch
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunet_diffrefine.environment import ensure_trainer_lookup

    model = results / DATASET_NAME / f"{trainer}__{plans}__3d_fullres"
    if (model / "fold_0" / "checkpoint_final.pth").is_file():
        return model
    (model / "fold_0").mkdir(parents=True, exist_ok=True)
    plans_dict = json.loads((preprocessed / f"{plans}.json").read_text())
    dataset_json = json.loads((preprocessed / "dataset.json").read_text())
    (model / "plans.json").write_text(json.dumps(plans_dict, indent=2))
    (model / "dataset.json").write_text(json.dumps(dataset_json, indent=2))
    ensure_trainer_lookup()
    trainer_class = recursive_find_trainer_class_by_name(
        trainer
    )  # nnU-Net's lookup, nnUNet_extTrainer included
    manager = PlansManager(plans_dict)
    configuration = manager.get_configuration("3d_fullres")
    label_manager = manager.get_label_manager(dataset_json)
    torch.manual_seed(0)
    network = trainer_class.build_network_architecture(
        manager,
        configuration,
        len(dataset_json["channel_names"]),
        label_manager.num_segmentation_heads,
        enable_deep_supervision=False,
    )
    assert issubclass(trainer_class, nnUNetTrainer)
    torch.save(
        {
            "network_weights": network.state_dict(),
            "trainer_name": trainer,
            "init_args": {"plans": plans_dict, "configuration": "3d_fullres", "fold": 0},
            "inference_allowed_mirroring_axes": (0, 1, 2),
        },
        model / "fold_0" / "checkpoint_final.pth",
    )
    return model


def _save_untrained_refiner(model: Path, name: str, patch: list[int]) -> None:
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from nnunet_diffrefine.refine.base import DatasetSignature
    from nnunet_diffrefine.refine.registry import create_refiner, refiner_class, refiner_settings
    from nnunet_diffrefine.refine.train import resolve_patch

    manager = PlansManager(str(model / "plans.json"))
    dataset_json = json.loads((model / "dataset.json").read_text())
    signature = DatasetSignature.from_dataset_json(manager.dataset_name, dataset_json)
    settings = resolve_patch(refiner_class(name), refiner_settings(name, patch_size=None), patch)
    create_refiner(name, signature, settings).save(model / "fold_0" / f"refiner_{name}")


def _trained_like_prior(pred: Path, labels: Path, out: Path, dataset_json: dict) -> Path:
    """Copy ``pred`` to ``out`` with the probabilities replaced by the reference regions blurred by a Gaussian
    (sigma 1.5 voxels): what a trained model exports, since the refiners' region of interest depends on
    the prior and an untrained network's probabilities (about 0.5 everywhere) would make it the volume."""
    import shutil

    import numpy as np
    import SimpleITK as sitk
    from scipy.ndimage import gaussian_filter

    from nnunet_diffrefine.evaluation.folder import dataset_regions

    regions = dataset_regions(dataset_json)[0]
    out.mkdir(parents=True, exist_ok=True)
    for npz in sorted(pred.glob("*.npz")):
        case = npz.name[: -len(".npz")]
        labels_zyx = sitk.GetArrayFromImage(
            sitk.ReadImage(str(labels / f"{case}{dataset_json['file_ending']}"))
        )
        probabilities = np.stack(
            [
                gaussian_filter(
                    np.isin(labels_zyx, r if isinstance(r, tuple) else (r,)).astype(np.float32), 1.5
                )
                for r in regions
            ]
        )
        np.savez_compressed(out / npz.name, probabilities=np.clip(probabilities, 0, 1).astype(np.float32))
        shutil.copy(pred / f"{case}.pkl", out / f"{case}.pkl")
    return out


def _trained_prior(model: Path, fold: int, cases: dict, out: Path, device: str) -> Path:
    """The test cases predicted by the trained model folder ``model`` (fold ``fold``, no mirroring):
    its probabilities on the test cases' own grid, ``CASE.npz`` + ``CASE.pkl``."""
    from nnunet_diffrefine.benchmark.predict import predict_cases

    if not (out / "timings.json").is_file():
        predict_cases(model, fold, cases, out, device, use_mirroring=False, save_probabilities=True)
    return out


def _roi_sizes(prior: Path, refiner: str, patch: list[int]) -> dict[str, dict]:
    """Per case: the region of interest the conditioned ``refiner`` works on, as its box on the exported
    grid (voxels, share of the volume); {} for a refiner that refines the whole volume."""
    import numpy as np

    from nnunet_diffrefine.refine.registry import refiner_class, refiner_settings
    from nnunet_diffrefine.refine.roi import roi_box
    from nnunet_diffrefine.refine.train import resolve_patch

    settings = resolve_patch(refiner_class(refiner), refiner_settings(refiner, patch_size=None), patch)
    if not getattr(settings, "roi", False):
        return {}
    sizes = {}
    for npz in sorted(prior.glob("*.npz")):
        probabilities = np.load(npz)["probabilities"]
        box = roi_box(
            probabilities,
            True,
            settings.patch_size,
            settings.roi_threshold,
            settings.roi_margin,
            settings.roi_seed_threshold,
        )
        shape = [0, 0, 0] if box is None else [b.stop - b.start for b in box]
        sizes[npz.name[: -len(".npz")]] = {
            "box": shape,
            "voxels": int(np.prod(shape)),
            "share_of_volume": round(float(np.prod(shape)) / float(np.prod(probabilities.shape[1:])), 4),
        }
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=None, help="working folder (default: a temporary one)")
    parser.add_argument("--shape", type=int, nargs="+", default=[155, 240, 240], help="Z Y X or one side")
    parser.add_argument("--num-test", type=int, default=1)
    parser.add_argument("-device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("-o", default=str(Path(__file__).parent / "results" / "refine_cost"))
    parser.add_argument("--render-only", action="store_true", help="rewrite the Markdown from the JSON of -o")
    parser.add_argument(
        "--prior-model",
        type=Path,
        help="a trained nnU-Net model folder (TRAINER__PLANS__CONFIGURATION) whose predictions are the prior "
        "(default: the reference blurred by a Gaussian)",
    )
    parser.add_argument("--prior-fold", type=int, default=0)
    parser.add_argument("--bases", nargs="+", choices=list(BASES), default=list(BASES))
    parser.add_argument("--refiners", nargs="+", help="only these refiners (default: every one of each base)")
    parser.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="inference settings changed for every refiner (e.g. inference_steps=5; default: the trained ones)",
    )
    args = parser.parse_args()
    overrides = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    if args.render_only:
        out = Path(args.o)
        write_markdown(json.loads(out.with_suffix(".json").read_text()), out.with_suffix(".md"))
        return
    shape = tuple(args.shape * 3 if len(args.shape) == 1 else args.shape)
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_refine_cost_"))

    from nnunet_diffrefine.benchmark.predict import case_files, predict_cases
    from nnunet_diffrefine.data.synth import SynthConfig, synthesize_dataset
    from nnunet_diffrefine.refine.run import RefineOptions, refine_folder
    from nnunet_diffrefine.training.plans_presets import write_plans_preset

    nnunet = workspace(work)
    raw = work / "nnUNet_raw" / DATASET_NAME
    pre = work / "nnUNet_preprocessed" / DATASET_NAME
    if not raw.is_dir():  # planning needs a few training cases; only the test cases are timed
        synthesize_dataset(
            work / "nnUNet_raw",
            DATASET_ID,
            DATASET_NAME.split("_", 1)[1],
            3,
            args.num_test,
            SynthConfig(shape=shape, seed=11, phenotype="adult"),
            num_processes=2,
        )
    if not (pre / "nnUNetPlans.json").is_file():
        nnunet.plan_and_preprocess(DATASET_ID)
    for _, (_, plans, arch, _) in BASES.items():
        if arch and not (pre / f"{plans}.json").is_file():
            write_plans_preset(DATASET_ID, arch, preprocessed_root=pre.parent)

    dataset_json = json.loads((pre / "dataset.json").read_text())
    cases = case_files(raw / "imagesTs", dataset_json["file_ending"], len(dataset_json["channel_names"]))
    results: dict = {}
    trained = args.prior_model and _trained_prior(
        args.prior_model, args.prior_fold, cases, work / "prior" / "trained", args.device
    )
    for base, (trainer, plans, _, refiners) in BASES.items():
        if base not in args.bases:
            continue
        refiners = [r for r in refiners if not args.refiners or r in args.refiners]
        model = _untrained_model_folder(work / "nnUNet_results", trainer, plans, pre)
        patch = json.loads((model / "plans.json").read_text())["configurations"]["3d_fullres"]["patch_size"]
        pred = work / "pred" / trainer
        started = time.perf_counter()
        measured = predict_cases(
            model, 0, cases, pred, args.device, use_mirroring=False, save_probabilities=True
        )
        print(f"{base}: predicted {len(cases)} case(s) in {time.perf_counter() - started:.1f} s", flush=True)
        base_s = sum(m.seconds for m in measured.values()) / len(measured)
        prior = trained or _trained_like_prior(pred, raw / "labelsTs", work / "prior" / trainer, dataset_json)
        entry = {
            "trainer": trainer,
            "plans": plans,
            "patch_size": patch,
            "prediction_seconds_per_case": round(base_s, 2),
            "prediction_peak_rss_mb": round(max(m.peak_rss_mb for m in measured.values()), 1),
            "refiners": {},
        }
        for name in refiners:
            # always saved anew: fresh weights either way, and the settings (the region of interest
            # above all) must be today's defaults, those _roi_sizes reports; a refiner.json written by
            # an older version loads with that version's region (refine/registry.py)
            _save_untrained_refiner(model, name, patch)
            tag = "".join(f"_{k}{v}" for k, v in sorted(overrides.items()))
            out = refine_folder(
                prior,
                work / "refined" / trainer / f"{name}{tag}",
                model,
                [0],
                raw / "imagesTs",
                RefineOptions(refiner=name, device=args.device, overrides=overrides or None),
            )
            timings = json.loads((out / "timings.json").read_text())
            seconds = sum(t["seconds"] for t in timings.values()) / len(timings)
            config = json.loads((model / "fold_0" / f"refiner_{name}" / "refiner.json").read_text())
            entry["refiners"][name] = {
                "seconds_per_case": round(seconds, 2),
                "peak_rss_mb": round(max(t["peak_rss_mb"] for t in timings.values()), 1),
                "inference_steps": overrides.get("inference_steps", config["settings"]["inference_steps"]),
                "overrides": overrides,
                "patch_size": config["settings"]["patch_size"],
                "cost_ratio": round(seconds / base_s, 3),
                "target_ratio": TARGET_RATIO.get(name),
                "meets_target": None
                if name not in TARGET_RATIO
                else bool(
                    seconds <= TARGET_RATIO[name] * base_s
                    and max(t["peak_rss_mb"] for t in timings.values()) <= TARGET_PEAK_MB
                ),
                "region_of_interest": _roi_sizes(prior, name, patch),
            }
            print(f"{base} + {name}: {seconds:.1f} s per case (ratio {seconds / base_s:.2f})", flush=True)
        results[base] = entry

    record = {
        "benchmark": "refinement cost per case vs the base model's nnU-Net prediction (no mirroring)",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, device {args.device}",
        "grid": list(shape),
        "test_cases": len(cases),
        "weights": "freshly initialised (cost does not depend on the weight values)",
        "prior": f"predicted by {args.prior_model} fold {args.prior_fold} (no mirroring)"
        if args.prior_model
        else "the reference regions blurred by a Gaussian (sigma 1.5 voxels)",
        "target_peak_rss_mb": TARGET_PEAK_MB,
        "models": results,
    }
    out = Path(args.o)
    save_json(record, out.with_suffix(".json"))
    write_markdown(record, out.with_suffix(".md"))


def write_markdown(record: dict, path: Path) -> None:
    """The table of ``record`` (what ``main`` writes as JSON) as Markdown, also printed."""
    shape = record["grid"]
    lines = [
        f"Refinement cost per case on a {'x'.join(map(str, shape))} synthetic BraTS-like case "
        f"({record['machine']}; default plans and refiner settings; no test-time mirroring; "
        f"`python benchmarks/bench_refine_cost.py`). Prior: {record.get('prior', 'the reference blurred')}. "
        "Peak RSS: the process's resident memory. Region of interest: the box a conditioned refiner "
        "works on, share of the volume (mean over the cases).",
        "",
        "| base model (patch) | base prediction (s) | base peak RSS (MB) | refiner | steps | refiner patch "
        "| region of interest | refinement (s) | refinement peak RSS (MB) | ratio (s) | target | met |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for base, entry in record["models"].items():
        head = (
            f"| {base} ({'x'.join(map(str, entry['patch_size']))}) | {entry['prediction_seconds_per_case']:.1f} "
            f"| {entry['prediction_peak_rss_mb']:.0f} |"
        )
        if not entry["refiners"]:
            lines.append(f"{head} - | - | - | - | - | - | - | - | - |")
        for name, r in entry["refiners"].items():
            rois = list(r.get("region_of_interest", {}).values())
            roi = "not measured" if "region_of_interest" not in r else "whole volume"
            if rois:
                roi = f"{sum(x['share_of_volume'] for x in rois) / len(rois):.1%}"
            target = "-" if r["target_ratio"] is None else f"<= {r['target_ratio']}"
            met = "-" if r["meets_target"] is None else ("yes" if r["meets_target"] else "no")
            lines.append(
                f"{head} {name} | {r['inference_steps']} | {'x'.join(map(str, r['patch_size']))} | {roi} | "
                f"{r['seconds_per_case']:.1f} | {r['peak_rss_mb']:.0f} | {r['cost_ratio']:.2f} | {target} | {met} |"
            )
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
