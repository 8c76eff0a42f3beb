"""Reading one case for a report: the segmentation, the four images and an optional reference.

Everything is checked before any work: readable 3D files, only BraTS labels (0-3), and the images
and the reference on the segmentation's grid (size, spacing, origin, direction). Problems raise
:class:`InputError` naming the file. Only voxel data and geometry are kept; nothing else from the
headers or the file names travels further, except the case id (see :func:`default_case_id`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from nnunet_diffrefine.data.brats import CHANNEL_NAMES, KNOWN_LABELS
from nnunet_diffrefine.data.challenges import CONVENTIONS, DEFAULT_CONVENTION, convention_of_dataset
from nnunet_diffrefine.errors import InputError
from nnunet_diffrefine.evaluation.case import Geometry, label_values

IMAGE_NAMES: tuple[str, ...] = tuple(CHANNEL_NAMES[str(c)] for c in range(4))
"""Channel names in nnU-Net order (``_0000`` .. ``_0003``): T1n, T1c, T2w, T2F (T2-FLAIR)."""

_SUFFIXES = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd")


@dataclass
class CaseInputs:
    """One case. ``segmentation`` and ``reference`` ``(Z, Y, X)`` int arrays; ``images`` channel name ->
    ``(Z, Y, X)`` float32 (empty if none given); ``grid``: a voxel-less SimpleITK image with the
    segmentation's geometry, for index -> physical (LPS, mm) mapping."""

    case_id: str
    segmentation: np.ndarray
    grid: sitk.Image
    images: dict[str, np.ndarray]
    reference: np.ndarray | None = None

    @property
    def spacing_zyx(self) -> tuple[float, float, float]:
        return tuple(float(s) for s in self.grid.GetSpacing()[::-1])  # type: ignore[return-value]


def default_case_id(segmentation_file: str | os.PathLike) -> str:
    """The segmentation's file name without its image suffix (``BraTS-GLI-00001-000.nii.gz`` ->
    ``BraTS-GLI-00001-000``). This is the only part of any file name that reaches the report; the
    LLM prompt gets a pseudonym of it (:mod:`.privacy`) unless the user asks to send it."""
    name = Path(segmentation_file).name
    for suffix in _SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _read(path: str | os.PathLike, what: str) -> sitk.Image:
    if not Path(path).is_file():
        raise InputError(f"{path}: {what} file not found")
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as e:
        lines = [line for line in str(e).splitlines() if line.strip()]
        raise InputError(f"{path}: cannot read the {what} ({lines[-1].strip() if lines else e})") from None
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"{path}: expected a 3D single-channel {what}, got a {image.GetDimension()}D image")
    return image


def check_report_convention(dataset_json: dict | None, where: str = "dataset.json") -> None:
    """Refuse a dataset whose declared convention numbers its labels otherwise than BraTS 2021/2023 (1 NC,
    2 ED, 3 ET): the report's wording, proportions and colours are written for those labels only."""
    if dataset_json is None:
        return
    convention = convention_of_dataset(dataset_json)
    if convention is None or convention.labels == CONVENTIONS[DEFAULT_CONVENTION].labels:
        return
    labels = ", ".join(f"{c.value} {c.short}" for c in convention.labels)
    raise InputError(
        f"{where} declares {convention.title} ({labels}); the report is written for the BraTS 2021/2023 "
        "labels (1 NC, 2 ED, 3 ET) only and would name these regions wrongly"
    )


def read_labels(path: str | os.PathLike, what: str = "segmentation") -> tuple[np.ndarray, sitk.Image]:
    """A BraTS label map ``(Z, Y, X)`` (int16) and its image; :class:`InputError` on unknown labels."""
    image = _read(path, what)
    array = sitk.GetArrayFromImage(image)
    values = label_values(array).tolist()
    unknown = sorted(v for v in values if v not in KNOWN_LABELS)
    if unknown:
        hint = (
            " (BraTS 2021 label 4 is written as 3 since BraTS 2023; BraTS 2024 GLI/MET use 4 for the "
            "resection cavity and PED for edema, labels the report does not describe yet)"
            if 4 in unknown
            else ""
        )
        raise InputError(
            f"{path}: unknown label values {unknown}; a BraTS {what} holds only 0 background, "
            f"1 NC, 2 ED, 3 ET{hint}"
        )
    return array.astype(np.int16), image


def _grid_only(image: sitk.Image) -> sitk.Image:
    grid = sitk.Image([1, 1, 1], sitk.sitkUInt8)
    grid.SetSpacing(image.GetSpacing())
    grid.SetOrigin(image.GetOrigin())
    grid.SetDirection(image.GetDirection())
    return grid


def _check_grid(path: str | os.PathLike, image: sitk.Image, reference: Geometry, what: str) -> None:
    problem = reference.mismatch(Geometry.of(image))
    if problem is not None:
        raise InputError(
            f"{path}: the {what}'s {problem} differs from the segmentation's "
            f"({getattr(Geometry.of(image), problem)} vs {getattr(reference, problem)})"
        )


_BRATS_TAGS = {  # what a file name may say about its sequence, per channel (BraTS 2023 and 2021 names)
    0: ("-t1n", "_t1."),
    1: ("-t1c", "_t1ce"),
    2: ("-t2w", "_t2."),
    3: ("-t2f", "_flair"),
}
_CHANNEL_ALIASES = {0: {"t1n", "t1", "t1w", "native t1"}, 1: {"t1c", "t1ce", "t1gd", "t1-gd", "t1 contrast"}}
_CHANNEL_ALIASES |= {2: {"t2w", "t2", "t2-weighted"}, 3: {"t2f", "flair", "t2-flair", "t2 flair", "t2flair"}}


def image_order_problems(images: Sequence[str | os.PathLike], channel_names: dict | None = None) -> list[str]:
    """Where the images' names contradict nnU-Net's channel order T1n, T1c, T2w, T2-FLAIR: an
    ``_000N`` suffix or a BraTS sequence tag at the wrong position, and (``channel_names``: dataset.json's)
    a dataset whose channels are not these four in this order."""
    problems = []
    for position, path in enumerate(images):
        name = Path(path).name.lower()
        stem = next((name[: -len(s)] for s in _SUFFIXES if name.endswith(s)), name)
        if len(stem) > 5 and stem[-5] == "_" and stem[-4:].isdigit() and int(stem[-4:]) != position:
            problems.append(f"{Path(path).name} is channel {int(stem[-4:])}, given as image {position + 1}")
            continue
        for channel, tags in _BRATS_TAGS.items():
            if channel != position and any(tag in name + "." for tag in tags):
                problems.append(
                    f"{Path(path).name} looks like {IMAGE_NAMES[channel]}, given as image {position + 1}"
                )
    for key, name in sorted((channel_names or {}).items(), key=lambda kv: int(kv[0])):
        if int(key) in _CHANNEL_ALIASES and str(name).strip().lower() not in _CHANNEL_ALIASES[int(key)]:
            problems.append(
                f"dataset.json channel {key} is {name!r}, the report expects {IMAGE_NAMES[int(key)]}"
            )
    return problems


def load_case(
    segmentation: str | os.PathLike,
    images: Sequence[str | os.PathLike] = (),
    reference: str | os.PathLike | None = None,
    case_id: str | None = None,
    channel_names: dict | None = None,
    any_order: bool = False,
) -> CaseInputs:
    """Read and check one case. ``images``: none, or the four channels in nnU-Net order
    (``CASE_0000`` T1n, ``_0001`` T1c, ``_0002`` T2w, ``_0003`` T2-FLAIR); an order their names (or
    ``channel_names``, dataset.json's) contradict is refused unless ``any_order``."""
    if len(images) not in (0, len(IMAGE_NAMES)):
        raise InputError(
            f"give the {len(IMAGE_NAMES)} images in nnU-Net channel order (T1n, T1c, T2w, T2-FLAIR: "
            f"CASE_0000 .. CASE_0003) or none, got {len(images)}"
        )
    problems = [] if any_order else image_order_problems(images, channel_names)
    if problems:
        raise InputError(
            f"{'; '.join(problems[:2])}: give the images as T1n, T1c, T2w, T2-FLAIR (CASE_0000 .. CASE_0003), "
            "or pass --any-image-order if the names mislead"
        )
    seg, seg_image = read_labels(segmentation)
    geometry = Geometry.of(seg_image)
    arrays: dict[str, np.ndarray] = {}
    for name, path in zip(IMAGE_NAMES, images):
        image = _read(path, f"{name} image")
        _check_grid(path, image, geometry, f"{name} image")
        arrays[name] = sitk.GetArrayFromImage(image).astype(np.float32)
    ref = None
    if reference is not None:
        ref, ref_image = read_labels(reference, "reference segmentation")
        _check_grid(reference, ref_image, geometry, "reference segmentation")
    return CaseInputs(
        case_id=case_id if case_id is not None else default_case_id(segmentation),
        segmentation=seg,
        grid=_grid_only(seg_image),
        images=arrays,
        reference=ref,
    )
