"""Synthetic BraTS-like datasets: MNI anatomy, irregular tumors, four contrasts, nnU-Net layout.

``synthesize_dataset`` writes an nnU-Net raw dataset ``DatasetXXX_NAME`` (imagesTr, labelsTr,
imagesTs, labelsTs, dataset.json with the region-based BraTS labels) and, optionally, the same cases
in the BraTS 2023 folder layout. Output is deterministic: one seed gives byte-identical files,
whatever the number of worker processes, because every case draws from its own generator seeded
with ``(seed, case index)``.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from tqdm import tqdm

from nnunet_diffrefine import __version__
from nnunet_diffrefine.data.brats import (
    CHANNEL_NAMES,
    FILE_ENDING,
    dataset_folder_name,
    existing_dataset_with_id,
)
from nnunet_diffrefine.data.challenges import (
    DEFAULT_CONVENTION,
    Convention,
    convention_dataset_json,
    get_convention,
)
from nnunet_diffrefine.data.contrasts import Realism, compose_contrasts
from nnunet_diffrefine.data.realism import (
    PROFILES,
    REALISM,
    RealismSettings,
    annotator_jitter,
    patchy_enhancement,
    realistic_lesion_levels,
    t1c_mimics,
)
from nnunet_diffrefine.data.template import (
    BrainMaps,
    brain_maps,
    grid_spacing,
    load_mni_template,
    random_brain_transform,
)
from nnunet_diffrefine.data.tumor import (
    PHENOTYPES,
    add_fluid,
    lesion_labels,
    mass_effect_displacement,
    merge_labels,
    sample_lesion,
)
from nnunet_diffrefine.errors import InputError
from nnunet_diffrefine.utils.io import atomic_output_dir, write_json

BRAIN_BOX_MM = (140.0, 170.0, 150.0)
"""(z, y, x) extent in mm of the box around the brain that the ``realistic`` grids crop to."""


def brain_crop_grid(spacing_mm: float) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    """``(shape, spacing)`` of the box around the brain (:data:`BRAIN_BOX_MM`) at an isotropic spacing
    in mm: ``(56, 68, 60)`` voxels at 2.5 mm, ``(70, 85, 75)`` at 2 mm."""
    shape = tuple(int(round(side / spacing_mm)) for side in BRAIN_BOX_MM)
    return shape, (spacing_mm,) * 3


@dataclass(frozen=True)
class SynthConfig:
    """What to synthesize. ``shape`` is ``(Z, Y, X)``; ``spacing`` ``(z, y, x)`` in mm (None: fit the
    240 x 240 x 155 mm BraTS field of view isotropically, 1 mm on the BraTS grid)."""

    shape: tuple[int, int, int] = (96, 96, 96)
    spacing: tuple[float, float, float] | None = None
    seed: int = 0
    phenotype: str = "adult"
    second_lesion_prob: float = 0.2
    mass_effect: bool = True
    challenge: str = DEFAULT_CONVENTION
    """Label convention the files are written in (:mod:`nnunet_diffrefine.data.challenges`)."""
    fluid_prob: float = 0.0
    """Chance that a lesion has a fluid component (pediatric: a cyst, adult: a resection cavity)."""
    profile: str = "classic"
    """``classic`` (voxel-separable phantoms) or ``realistic`` (:mod:`nnunet_diffrefine.data.realism`:
    patchy enhancement, edema-like non-enhancing tumour, T1c mimics, low contrast-to-noise, artefacts,
    annotator jitter; ``second_lesion_prob`` is then the profile's satellite probability)."""
    realism: RealismSettings = REALISM
    """The strength of each effect of the ``realistic`` profile (ignored by ``classic``)."""

    def grid_spacing(self) -> tuple[float, float, float]:
        return tuple(self.spacing) if self.spacing is not None else grid_spacing(self.shape)


@dataclass
class SyntheticCase:
    """One phantom: ``images`` ``(4, Z, Y, X)`` int16 (T1n, T1c, T2w, T2-FLAIR), ``labels`` ``(Z, Y, X)`` uint8."""

    case_id: str
    images: np.ndarray
    labels: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    meta: dict = field(default_factory=dict)
    tissue: BrainMaps | None = None  # the (deformed) tissue maps the images were made from; not written


def case_id_for(index: int, phenotype: str, challenge: str = DEFAULT_CONVENTION) -> str:
    """BraTS style case id: ``BraTS-GLI-00007-000`` (adult) or ``BraTS-PED-00007-000`` (pediatric) for
    the 2021 and 2023 GLI conventions, else the challenge's prefix (``BraTS-MEN-RT-00007-000``)."""
    if challenge in ("brats2021", DEFAULT_CONVENTION):
        return f"BraTS-{'GLI' if phenotype == 'adult' else 'PED'}-{index:05d}-000"
    return f"{get_convention(challenge).case_prefixes[0]}-{index:05d}-000"


def written_labels(convention: Convention) -> np.ndarray:
    """Lookup table: the generator's label (0 background, 1 core, 2 edema, 3 enhancing, 4 fluid) -> the
    label written in ``convention`` (fluid: its cystic component or resection cavity, else the core;
    a single-label convention such as MEN-RT's GTV: every tumor voxel)."""
    by_kind = {c.kind: c.value for c in convention.labels}
    if "gtv" in by_kind:
        return np.array([0, 1, 1, 1, 1], dtype=np.uint8)
    fluid = by_kind.get("cyst", by_kind.get("cavity", by_kind["core"]))
    return np.array([0, by_kind["core"], by_kind["edema"], by_kind["enhancing"], fluid], dtype=np.uint8)


def _channel_indices(convention: Convention) -> list[int]:
    """Which of the generator's four images (T1n, T1c, T2w, T2-FLAIR) the convention's channels are."""
    order = list(CHANNEL_NAMES.values())
    return [order.index(name) for name in convention.layout.channel_names]


def check_profile(profile: str) -> None:
    if profile not in PROFILES:
        raise InputError(f"unknown synthesis profile {profile!r}; choose one of {', '.join(PROFILES)}")


def case_phenotype(seed: int, index: int, phenotype: str) -> str:
    if phenotype not in PHENOTYPES:
        raise InputError(f"unknown phenotype {phenotype!r}; choose one of {', '.join(PHENOTYPES)}")
    if phenotype != "mixed":
        return phenotype
    rng = np.random.default_rng(np.random.SeedSequence([seed, index, 1]))
    return "adult" if rng.random() < 0.5 else "pediatric"


def _warp(maps: BrainMaps, displacement: np.ndarray) -> BrainMaps:
    """Apply a pull-back displacement ``(3, Z, Y, X)`` in voxels to every tissue map (linear)."""
    coords = np.indices(maps.brain.shape, dtype=np.float32) - displacement

    def warp(a: np.ndarray) -> np.ndarray:
        return ndimage.map_coordinates(a, coords, order=1, mode="nearest").astype(np.float32)

    brain = warp(maps.brain.astype(np.float32)) > 0.5
    return BrainMaps(
        t1=warp(maps.t1) * brain,
        gm=warp(maps.gm) * brain,
        wm=warp(maps.wm) * brain,
        csf=warp(maps.csf) * brain,
        brain=brain,
        spacing=maps.spacing,
        origin=maps.origin,
        transform=maps.transform,
    )


def generate_case(config: SynthConfig, index: int) -> SyntheticCase:
    """Generate case number ``index`` of a dataset (deterministic for ``(config, index)``)."""
    phenotype = case_phenotype(config.seed, index, config.phenotype)
    check_profile(config.profile)
    realistic = config.profile == "realistic"
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, index]))
    # the realistic profile's own stream, so that the classic phantoms stay byte-identical
    extra = np.random.default_rng(np.random.SeedSequence([config.seed, index, 3]))
    spacing = config.grid_spacing()
    # children's brains are somewhat smaller than the adult MNI template
    brain_scale = 1.0 if phenotype == "adult" else rng.uniform(0.86, 0.95)
    maps = brain_maps(config.shape, spacing, random_brain_transform(rng, scale=brain_scale))
    if maps.brain.sum() == 0:
        raise InputError(f"the grid {config.shape} with spacing {spacing} mm does not contain the brain")
    depth_mm = ndimage.distance_transform_edt(maps.brain, sampling=spacing)
    lesions = [sample_lesion(rng, phenotype, maps, depth_mm)]
    satellite_prob = config.realism.satellite_prob if realistic else config.second_lesion_prob
    if rng.random() < satellite_prob:
        lesions.append(
            sample_lesion(rng, phenotype, maps, depth_mm, size_scale=0.6, avoid=[np.array(lesions[0].center)])
        )
    if not config.mass_effect:
        for lesion in lesions:
            lesion.mass_effect_mm = 0.0
    displacement = sum(mass_effect_displacement(maps.brain.shape, np.array(spacing), les) for les in lesions)
    maps = _warp(maps, displacement)
    per_lesion, non_enhancing = [], np.zeros(maps.brain.shape, dtype=bool)
    for lesion in lesions:
        if realistic:
            realistic_lesion_levels(extra, lesion, config.realism)
        lesion_map = lesion_labels(rng, maps, lesion)
        if realistic:
            lesion_map, net = patchy_enhancement(extra, lesion_map, lesion.phenotype, spacing, config.realism)
            non_enhancing |= net
        per_lesion.append(lesion_map)
    labels = merge_labels(per_lesion)
    if config.fluid_prob > 0:  # its own stream: without fluid the phantoms stay byte-identical
        fluid_rng = np.random.default_rng(np.random.SeedSequence([config.seed, index, 2]))
        for lesion in lesions:
            if fluid_rng.random() < config.fluid_prob:
                labels = add_fluid(fluid_rng, labels, lesion, spacing, maps.brain)
    realism = None
    if realistic:
        depth_now = ndimage.distance_transform_edt(maps.brain, sampling=spacing)
        realism = Realism(
            config.realism, extra, non_enhancing, t1c_mimics(extra, maps, depth_now, config.realism)
        )
    images = compose_contrasts(rng, maps, labels, phenotype, realism)
    if realistic:  # the annotation is a few mm off the tumour the images show
        labels = annotator_jitter(extra, labels, spacing, maps.brain, config.realism)
    convention = get_convention(config.challenge)
    labels = written_labels(convention)[labels]
    images = images[_channel_indices(convention)]
    voxel_cm3 = float(np.prod(spacing)) / 1000.0
    meta = {
        "phenotype": phenotype,
        "lesions": [les.to_json() for les in lesions],
        "volumes_cm3": {
            c.short: round(float((labels == c.value).sum()) * voxel_cm3, 4) for c in convention.labels
        },
    }
    return SyntheticCase(
        case_id_for(index, phenotype, config.challenge),
        images,
        labels,
        spacing,
        maps.origin,
        meta,
        tissue=maps,
    )


def write_nifti(
    array: np.ndarray, spacing: tuple[float, float, float], origin: tuple[float, float, float], path: Path
) -> None:
    """Write a ``(Z, Y, X)`` array as compressed NIfTI with ``spacing`` ``(z, y, x)`` mm, identity direction."""
    image = sitk.GetImageFromArray(array)
    image.SetSpacing([float(s) for s in spacing[::-1]])
    image.SetOrigin([float(o) for o in origin])
    sitk.WriteImage(image, str(path), useCompression=True)


def _write_case(config: SynthConfig, index: int, split: str, dataset_dir: str) -> tuple[int, str, str, dict]:
    """Worker: generate one case and write it into ``dataset_dir``; returns ``(index, case_id, split, meta)``."""
    case = generate_case(config, index)
    folder = Path(dataset_dir)
    images_dir, labels_dir = ("imagesTr", "labelsTr") if split == "train" else ("imagesTs", "labelsTs")
    for c in range(len(case.images)):
        write_nifti(
            case.images[c],
            case.spacing,
            case.origin,
            folder / images_dir / f"{case.case_id}_{c:04d}{FILE_ENDING}",
        )
    write_nifti(case.labels, case.spacing, case.origin, folder / labels_dir / f"{case.case_id}{FILE_ENDING}")
    return index, case.case_id, split, case.meta


def _write_brats_layout(
    dataset_dir: Path, cases: list[tuple[int, str, str, dict]], target: Path, convention: Convention
) -> None:
    """Copy the cases into the release layout of ``convention`` (BraTS 2023: ``<case>/<case>-t1n.nii.gz
    ... -seg.nii.gz``), the labels in the release's own numbering (BraTS 2021: enhancing tumor 4).

    Training cases get their segmentation; test cases are left without one, like BraTS validation data.
    """
    layout = convention.layout
    inverse = {new: old for old, new in convention.label_map.items()}
    for _, case_id, split, _ in cases:
        images_dir = dataset_dir / ("imagesTr" if split == "train" else "imagesTs")
        case_dir = target / case_id
        case_dir.mkdir(parents=True)
        for c, modality in enumerate(layout.modalities):
            shutil.copyfile(
                images_dir / f"{case_id}_{c:04d}{FILE_ENDING}",
                case_dir / f"{case_id}{layout.tag(modality)}{FILE_ENDING}",
            )
        if split != "train":
            continue
        source = dataset_dir / "labelsTr" / f"{case_id}{FILE_ENDING}"
        seg_path = case_dir / f"{case_id}{layout.tag(layout.seg)}{FILE_ENDING}"
        if not inverse:
            shutil.copyfile(source, seg_path)
            continue
        image = sitk.ReadImage(str(source))
        array = sitk.GetArrayFromImage(image)
        out = array.copy()
        for new_value, old_value in inverse.items():
            out[array == new_value] = old_value
        relabelled = sitk.GetImageFromArray(out)
        relabelled.CopyInformation(image)
        sitk.WriteImage(relabelled, str(seg_path), useCompression=True)


def synthesize_dataset(
    raw_root: str | os.PathLike,
    dataset_id: int,
    name: str,
    num_train: int,
    num_test: int,
    config: SynthConfig = SynthConfig(),
    num_processes: int = 1,
    brats_layout: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: bool = True,
    label_based: bool = False,
) -> Path:
    """Write ``raw_root/DatasetXXX_NAME`` with ``num_train`` labelled and ``num_test`` test phantoms.

    Labels, regions and channels follow ``config.challenge`` (default BraTS 2023: 1 NC, 2 ED, 3 ET). The
    dataset.json is the convention's region-based one (sigmoid regions such as WT/TC/ET, as BraTS
    scores) unless ``label_based`` (softmax over background and the labels); the label files are the
    same either way.

    Returns the dataset folder. The folder appears only once complete; an existing one is refused
    unless ``overwrite``; another dataset with the same id is always refused (nnU-Net needs unique ids).
    """
    if num_train < 1 or num_test < 0:
        raise InputError(
            f"need at least one training case and no negative test count (got {num_train}, {num_test})"
        )
    if any(int(s) < 16 for s in config.shape):
        raise InputError(f"shape {config.shape} is too small: every side needs at least 16 voxels")
    raw_root = Path(raw_root)
    final = raw_root / dataset_folder_name(dataset_id, name)
    clash = existing_dataset_with_id(raw_root, dataset_id)
    if clash is not None and clash.name != final.name:
        raise InputError(f"dataset id {dataset_id} is already used by {clash}; choose another -d")
    brats_target = Path(brats_layout) if brats_layout is not None else None
    if brats_target is not None and brats_target.exists() and not overwrite:
        raise InputError(
            f"{brats_target} already exists; refusing to overwrite it (remove it or pass --overwrite)"
        )
    case_phenotype(config.seed, 0, config.phenotype)  # validates the phenotype before any work
    check_profile(config.profile)
    convention = get_convention(config.challenge)
    if not 0.0 <= config.fluid_prob <= 1.0:
        raise InputError(f"the fluid probability must be between 0 and 1, got {config.fluid_prob}")
    jobs = [(i, "train") for i in range(num_train)] + [(num_train + i, "test") for i in range(num_test)]
    with atomic_output_dir(final, overwrite=overwrite) as tmp:
        for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
            (tmp / sub).mkdir()
        results = _run_jobs(config, jobs, tmp, num_processes, progress)
        results.sort(key=lambda r: r[0])
        write_json(
            convention_dataset_json(
                convention,
                num_train,
                name,
                label_based,
                description=_description(config),
                reference="synthetic",
            ),
            tmp / "dataset.json",
        )
        write_json(_synthesis_record(config, results), tmp / "synthesis.json")
        if brats_target is not None:
            with atomic_output_dir(brats_target, overwrite=overwrite) as brats_tmp:
                _write_brats_layout(tmp, results, brats_tmp, convention)
    return final


def _run_jobs(
    config: SynthConfig, jobs: list[tuple[int, str]], folder: Path, num_processes: int, progress: bool
) -> list:
    bar = tqdm(total=len(jobs), desc="synthesizing cases", unit="case", disable=not progress)
    results = []
    try:
        if num_processes <= 1:
            for index, split in jobs:
                results.append(_write_case(config, index, split, str(folder)))
                bar.update()
        else:
            load_mni_template()  # loaded once here; forked workers inherit it
            context = (
                multiprocessing.get_context("fork")
                if "fork" in multiprocessing.get_all_start_methods()
                else None
            )
            with ProcessPoolExecutor(max_workers=num_processes, mp_context=context) as pool:
                futures = [
                    pool.submit(_write_case, config, index, split, str(folder)) for index, split in jobs
                ]
                for future in futures:
                    results.append(future.result())
                    bar.update()
    finally:
        bar.close()
    return results


def _description(config: SynthConfig) -> str:
    return (
        f"Synthetic BraTS-like phantoms (nnunet-diffrefine {__version__}): MNI ICBM152 2009 anatomy, "
        f"{config.phenotype} tumors ({config.profile} profile) in the {config.challenge} labels, grid {list(config.shape)} at {[round(s, 4) for s in config.grid_spacing()]} mm, seed {config.seed}"
    )


def _synthesis_record(config: SynthConfig, results: list) -> dict:
    return {
        "generator": "nnunet-diffrefine synth",
        "version": __version__,
        "seed": config.seed,
        "shape_zyx": list(config.shape),
        "spacing_zyx_mm": [round(s, 6) for s in config.grid_spacing()],
        "phenotype": config.phenotype,
        "profile": config.profile,
        **({"realism": dataclasses.asdict(config.realism)} if config.profile == "realistic" else {}),
        "second_lesion_prob": config.second_lesion_prob,
        "mass_effect": config.mass_effect,
        "challenge": config.challenge,
        "fluid_prob": config.fluid_prob,
        "cases": {case_id: {"split": split, **meta} for _, case_id, split, meta in results},
    }
