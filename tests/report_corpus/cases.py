"""Measurement sets of the corpus: the issue's literal case and real BraTS 2018 cases read at test time.

The real cases live outside the repository (``REPO.parent / "shared" / "real" / "brats2018"``, or
``$NNUNET_DIFFREFINE_REAL_DATA``); only their label maps are read and measured with the project's own
:func:`~nnunet_diffrefine.report.measurements.measure`, so the midline is the image centre. Nothing
derived from them is written into the repository.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from nnunet_diffrefine.report.inputs import CaseInputs
from nnunet_diffrefine.report.measurements import measure
from nnunet_diffrefine.report.vocabulary import vocabulary

REPO = Path(__file__).resolve().parents[2]
REAL_ENV = "NNUNET_DIFFREFINE_REAL_DATA"

# case -> (label convention it is measured in, BraTS 2018 label -> that convention's label); the
# conventions differ in their numbering and names (2024 GLI NETC/SNFH, PED ET=1 NETC=2 ED=4, MEN-RT GTV)
REAL_CASES: dict[str, tuple[str, dict[int, int]]] = {
    "Brats18_2013_3_1": ("brats2021", {1: 1, 2: 2, 4: 3}),
    "Brats18_TCIA02_135_1": ("brats2024-gli", {1: 1, 2: 2, 4: 3}),
    "Brats18_TCIA01_201_1": ("brats2023-gli", {1: 1, 2: 2, 4: 3}),
    "Brats18_CBICA_ALU_1": ("brats2023-gli", {1: 1, 2: 2, 4: 3}),
    "Brats18_TCIA10_639_1": ("brats2024-ped", {1: 2, 2: 4, 4: 1}),
    "Brats18_CBICA_AME_1": ("brats2024-men-rt", {1: 1, 2: 1, 4: 1}),
}


def real_root() -> Path:
    """Where the real BraTS 2018 cases are (``$NNUNET_DIFFREFINE_REAL_DATA`` overrides)."""
    return Path(os.environ.get(REAL_ENV) or REPO.parent / "shared" / "real" / "brats2018")


@dataclass(frozen=True)
class MeasurementSet:
    """A case's measurements and the craniocaudal extent of its tumor (mm), which the report does not
    measure (a tridimensional size's third diameter)."""

    name: str
    m: dict[str, Any]
    craniocaudal_mm: float


def real_set(case: str) -> MeasurementSet:
    """A real case measured as :func:`measure_real` does, with the tumor's craniocaudal extent."""
    m, labels = measure_real(case)
    words = vocabulary(m["convention"])
    slices = np.flatnonzero(np.isin(labels, words.subregions[words.tumor]).any(axis=(1, 2)))
    extent = (slices.max() - slices.min() + 1) * m["spacing_zyx_mm"][0]
    return MeasurementSet(f"{case} ({m['convention']})", m, float(extent))


def measure_real(case: str) -> tuple[dict[str, Any], np.ndarray]:
    """The measurements of a real case's manual segmentation in the convention of :data:`REAL_CASES`,
    and its label map in that convention."""
    convention, mapping = REAL_CASES[case]
    image = sitk.ReadImage(str(real_root() / case / f"{case}_seg.nii.gz"))
    brats18 = sitk.GetArrayFromImage(image)
    labels = np.zeros(brats18.shape, np.int16)
    for old, new in mapping.items():
        labels[brats18 == old] = new
    grid = sitk.Image([1, 1, 1], sitk.sitkUInt8)
    grid.SetSpacing(image.GetSpacing())
    grid.SetOrigin(image.GetOrigin())
    grid.SetDirection(image.GetDirection())
    words = vocabulary(convention)
    assert set(np.unique(labels)) <= {0, *words.label_values}
    return measure(CaseInputs(case, labels, grid, {}, convention=convention)), labels


def literal_set() -> MeasurementSet:
    """The issue's case (its craniocaudal extent, not given, set to 31 mm)."""
    return MeasurementSet("issue 23: TCGA low-grade glioma", literal_case(), 31.0)


def literal_case() -> dict[str, Any]:
    """The issue's case, built directly: a TCGA low-grade glioma, WT 23.71 cm³, ED 14.53, NC 9.18,
    ET 0, one lesion, right hemisphere 16.2 mm from the midline, 40.8 x 33.6 mm on the largest axial
    slice (the slice index and areas, which the issue does not give, are plausible values)."""
    v = {"NC": 9.18, "ED": 14.53, "ET": 0.0, "TC": 9.18, "WT": 23.71}
    axial = {"view_index": 80, "file_axis": "Z", "file_index": 80, "area_mm2": 1052.0}
    axial |= {"long_diameter_mm": 40.8, "perpendicular_diameter_mm": 33.6, "product_mm2": 1370.88}
    return {
        "case_id": "TCGA-LGG-issue-23",
        "convention": "brats2023-gli",
        "finding": "tumor segmented",
        "labels_present": [1, 2],
        "shape_zyx": [155, 240, 240],
        "spacing_zyx_mm": [1.0, 1.0, 1.0],
        "voxel_volume_mm3": 1.0,
        "images": [],
        "volumes_cm3": v,
        "proportions": {"ET/TC": 0.0, "NC/TC": 1.0, "ED/WT": round(14.53 / 23.71, 4)},
        "lesions": {"count": 1, "volumes_cm3": [23.71]},
        "largest_slices": {
            "axial": axial,
            "coronal": {"view_index": 100, "file_axis": "Y", "file_index": 139, "area_mm2": 911.0},
            "sagittal": {"view_index": 104, "file_axis": "X", "file_index": 135, "area_mm2": 987.0},
        },
        "midline": {"x_mm": 0.0, "from": "image centre", "margin_mm": 2.0},
        "centroid_lps_mm": [-16.2, 10.0, 5.0],
        "centroid_offset_from_midline_mm": 16.2,
        "side": "right",
        "crosses_midline": False,
    }
