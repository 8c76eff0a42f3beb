"""Reading one case for a report: the segmentation, the images and an optional reference.

The label convention (default BraTS 2023; any of :mod:`nnunet_diffrefine.data.challenges`, usually the
one the dataset.json declares) says which labels and which images (four, MEN-RT: T1c only) a case has.
Everything is checked before any work: readable 3D files, only the convention's labels, and the images
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

from nnunet_diffrefine.data.brats import CHANNEL_NAMES
from nnunet_diffrefine.data.challenges import DEFAULT_CONVENTION, convention_of_dataset
from nnunet_diffrefine.errors import InputError
from nnunet_diffrefine.evaluation.case import Geometry, label_values
from nnunet_diffrefine.report.vocabulary import Vocabulary, vocabulary
from nnunet_diffrefine.utils.io import read_image_3d

IMAGE_NAMES: tuple[str, ...] = tuple(CHANNEL_NAMES[str(c)] for c in range(4))
"""BraTS channel names in nnU-Net order (``_0000`` .. ``_0003``): T1n, T1c, T2w, T2F (T2-FLAIR)."""

_TITLES = {"T1n": "T1n", "T1c": "T1c", "T2w": "T2w", "T2F": "T2-FLAIR"}

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
    convention: str = DEFAULT_CONVENTION
    """Key of the label convention (:data:`~nnunet_diffrefine.data.challenges.CONVENTIONS`)."""

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
    return read_image_3d(path, what)


def report_convention(dataset_json: dict | None) -> str:
    """The label convention a dataset.json declares (BraTS 2023 when none is given or declared);
    :class:`InputError` for an unknown one."""
    if dataset_json is None:
        return DEFAULT_CONVENTION
    convention = convention_of_dataset(dataset_json)
    return DEFAULT_CONVENTION if convention is None else convention.key


def _label_list(words: Vocabulary) -> str:
    return ", ".join(f"{v} {words.shown[words.code_of_label(v)]}" for v in words.label_values)


def read_labels(
    path: str | os.PathLike, what: str = "segmentation", convention: str = DEFAULT_CONVENTION
) -> tuple[np.ndarray, sitk.Image]:
    """A label map ``(Z, Y, X)`` (int16) of ``convention`` and its image; :class:`InputError` on a
    label the convention does not have."""
    image = _read(path, what)
    array = sitk.GetArrayFromImage(image)
    words = vocabulary(convention)
    values = label_values(array).tolist()
    unknown = sorted(v for v in values if v != 0 and v not in words.label_values)
    if unknown:
        hint = (
            " (BraTS 2021 label 4 is written as 3 since BraTS 2023; BraTS 2024 GLI/MET use 4 for the "
            "resection cavity and PED for edema: give the dataset.json that declares the convention)"
            if 4 in unknown and convention == DEFAULT_CONVENTION
            else ""
        )
        raise InputError(
            f"{path}: unknown label values {unknown}; a {words.title} {what} holds only 0 background, "
            f"{_label_list(words)}{hint}"
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


def image_order_problems(
    images: Sequence[str | os.PathLike],
    channel_names: dict | None = None,
    expected: Sequence[str] = IMAGE_NAMES,
) -> list[str]:
    """Where the images' names contradict nnU-Net's channel order ``expected`` (BraTS: T1n, T1c, T2w,
    T2-FLAIR): an ``_000N`` suffix or a BraTS sequence tag at the wrong position, and
    (``channel_names``: dataset.json's) a dataset whose channels are not these in this order."""
    problems = []
    by_name = {IMAGE_NAMES[c]: c for c in _BRATS_TAGS}
    for position, path in enumerate(images):
        name = Path(path).name.lower()
        stem = next((name[: -len(s)] for s in _SUFFIXES if name.endswith(s)), name)
        if len(stem) > 5 and stem[-5] == "_" and stem[-4:].isdigit() and int(stem[-4:]) != position:
            problems.append(f"{Path(path).name} is channel {int(stem[-4:])}, given as image {position + 1}")
            continue
        for channel, tags in _BRATS_TAGS.items():
            looks = IMAGE_NAMES[channel]
            if looks != (expected[position] if position < len(expected) else None) and any(
                tag in name + "." for tag in tags
            ):
                problems.append(f"{Path(path).name} looks like {looks}, given as image {position + 1}")
    for key, name in sorted((channel_names or {}).items(), key=lambda kv: int(kv[0])):
        want = expected[int(key)] if int(key) < len(expected) else None
        if want in by_name and str(name).strip().lower() not in _CHANNEL_ALIASES[by_name[want]]:
            problems.append(f"dataset.json channel {key} is {name!r}, the report expects {want}")
    return problems


def load_case(
    segmentation: str | os.PathLike,
    images: Sequence[str | os.PathLike] = (),
    reference: str | os.PathLike | None = None,
    case_id: str | None = None,
    channel_names: dict | None = None,
    any_order: bool = False,
    convention: str = DEFAULT_CONVENTION,
) -> CaseInputs:
    """Read and check one case of label ``convention``. ``images``: none, or the convention's channels
    in nnU-Net order (BraTS: ``CASE_0000`` T1n, ``_0001`` T1c, ``_0002`` T2w, ``_0003`` T2-FLAIR; MEN-RT:
    ``CASE_0000`` T1c); an order their names (or ``channel_names``, dataset.json's) contradict is
    refused unless ``any_order``."""
    expected = vocabulary(convention).channels
    order = ", ".join(_TITLES.get(c, c) for c in expected)
    files = f"CASE_0000 .. CASE_{len(expected) - 1:04d}" if len(expected) > 1 else "CASE_0000"
    if len(images) not in (0, len(expected)):
        raise InputError(
            f"give the {len(expected)} image(s) in nnU-Net channel order ({order}: {files}) or none, "
            f"got {len(images)}"
        )
    problems = [] if any_order else image_order_problems(images, channel_names, expected)
    if problems:
        raise InputError(
            f"{'; '.join(problems[:2])}: give the images as {order} ({files}), "
            "or pass --any-image-order if the names mislead"
        )
    seg, seg_image = read_labels(segmentation, convention=convention)
    geometry = Geometry.of(seg_image)
    arrays: dict[str, np.ndarray] = {}
    for name, path in zip(expected, images):
        image = _read(path, f"{name} image")
        _check_grid(path, image, geometry, f"{name} image")
        arrays[name] = sitk.GetArrayFromImage(image).astype(np.float32)
    ref = None
    if reference is not None:
        ref, ref_image = read_labels(reference, "reference segmentation", convention)
        _check_grid(reference, ref_image, geometry, "reference segmentation")
    return CaseInputs(
        case_id=case_id if case_id is not None else default_case_id(segmentation),
        segmentation=seg,
        grid=_grid_only(seg_image),
        images=arrays,
        reference=ref,
        convention=convention,
    )
