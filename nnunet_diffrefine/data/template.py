"""The MNI ICBM152 2009 brain template, resampled onto the phantom grid.

The T1 template and the grey/white-matter probability maps ship inside the nilearn wheel
(``nilearn/datasets/data/mni_icbm152_*_tal_nlin_sym_09a_converted.nii.gz``, 1 mm, skull-stripped),
so they are read from disk without importing nilearn and without any download. The brain mask is
nilearn's own definition (template T1 above 0.2 of its range) with holes filled; CSF is the brain
minus GM minus WM.

Grids are in SimpleITK's physical (LPS) space with an identity direction, so array axes
``(Z, Y, X)`` run inferior->superior, anterior->posterior and right->left, as in BraTS files read
with SimpleITK.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from nnunet_diffrefine.errors import InputError

BRATS_FOV_MM: tuple[float, float, float] = (155.0, 240.0, 240.0)
"""Field of view of the BraTS SRI24 grid (240 x 240 x 155 voxels of 1 mm), as ``(Z, Y, X)``."""

_MNI_FILES = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}

# Anatomical anchors in MNI space, given in SimpleITK's LPS millimetres (RAS x and y negated).
ANCHORS_LPS_MM: dict[str, tuple[float, float, float]] = {
    "pons": (0.0, 26.0, -30.0),
    "midbrain": (0.0, 22.0, -12.0),
    "thalamus_right": (-10.0, 18.0, 6.0),
    "thalamus_left": (10.0, 18.0, 6.0),
}


def mni_data_folder() -> Path:
    """Folder of nilearn's bundled data files (found without importing nilearn)."""
    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            "nilearn is not installed: it ships the MNI ICBM152 template the phantoms are built from"
        )
    folder = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    missing = [f for f in _MNI_FILES.values() if not (folder / f).is_file()]
    if missing:
        raise InputError(f"the installed nilearn lacks the MNI ICBM152 2009 files {missing} in {folder}")
    return folder


@functools.lru_cache(maxsize=1)
def load_mni_template() -> sitk.Image:
    """The template as one 4-component vector image (T1, GM, WM, brain), values in [0, 1], 1 mm."""
    folder = mni_data_folder()
    images = {
        k: sitk.Cast(sitk.Cast(sitk.ReadImage(str(folder / f)), sitk.sitkFloat32) / 255.0, sitk.sitkFloat32)
        for k, f in _MNI_FILES.items()
    }
    t1 = sitk.GetArrayFromImage(images["t1"])
    brain = ndimage.binary_fill_holes(t1 > 0.2)
    brain_img = sitk.GetImageFromArray(brain.astype(np.float32))
    brain_img.CopyInformation(images["t1"])
    return sitk.Compose(images["t1"], images["gm"], images["wm"], brain_img)


@functools.lru_cache(maxsize=1)
def mni_brain_center() -> tuple[float, float, float]:
    """Physical (LPS, mm) centre of the brain mask's bounding box."""
    tpl = load_mni_template()
    brain = sitk.GetArrayViewFromImage(tpl)[..., 3] > 0.5
    idx = np.argwhere(brain)
    center_zyx = (idx.min(0) + idx.max(0)) / 2.0
    return tpl.TransformContinuousIndexToPhysicalPoint([float(c) for c in center_zyx[::-1]])


def grid_spacing(
    shape: tuple[int, int, int], fov_mm: tuple[float, float, float] = BRATS_FOV_MM
) -> tuple[float, ...]:
    """Isotropic spacing (mm) that fits ``fov_mm`` into ``shape``: 1 mm for the BraTS grid, 2.5 mm for 96^3."""
    s = max(f / n for f, n in zip(fov_mm, shape))
    return (s, s, s)


@dataclass
class BrainMaps:
    """Tissue maps of one phantom on its grid; every array is ``(Z, Y, X)`` float32 in [0, 1]."""

    t1: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    brain: np.ndarray  # bool
    spacing: tuple[float, float, float]  # (z, y, x) mm
    origin: tuple[float, float, float]  # SimpleITK (x, y, z) mm
    transform: sitk.Transform  # output physical point -> template physical point

    def anchor_index(self, name: str) -> np.ndarray:
        """Continuous ``(z, y, x)`` index of an MNI anchor after this phantom's deformation."""
        point = self.transform.GetInverse().TransformPoint(ANCHORS_LPS_MM[name])
        xyz = [(p - o) / s for p, o, s in zip(point, self.origin, self.spacing[::-1])]
        return np.array(xyz[::-1])


def reference_grid(shape: tuple[int, int, int], spacing: tuple[float, float, float]) -> sitk.Image:
    """An empty image of ``shape`` ``(Z, Y, X)`` and ``spacing`` ``(z, y, x)`` centred on the MNI brain."""
    ref = sitk.Image([int(s) for s in shape[::-1]], sitk.sitkFloat32)
    ref.SetSpacing([float(s) for s in spacing[::-1]])
    center = np.array(mni_brain_center())
    half = (np.array(shape[::-1], dtype=float) - 1) / 2.0 * np.array(spacing[::-1])
    ref.SetOrigin([float(v) for v in center - half])
    return ref


def random_brain_transform(rng: np.random.Generator, scale: float = 1.0) -> sitk.AffineTransform:
    """A small random affine about the brain centre: rotations up to 6 degrees, scaling ``scale`` +-6 %,
    translation up to 4 mm. Maps output points to template points (so ``scale < 1`` shrinks the brain)."""
    angles = np.deg2rad(rng.uniform(-6, 6, size=3))
    cx, cy, cz = np.cos(angles)
    sx, sy, sz = np.sin(angles)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    scales = scale * rng.uniform(0.94, 1.06, size=3)
    matrix = rz @ ry @ rx @ np.diag(1.0 / scales)
    tfm = sitk.AffineTransform(3)
    tfm.SetCenter(mni_brain_center())
    tfm.SetMatrix([float(v) for v in matrix.ravel()])
    tfm.SetTranslation([float(v) for v in rng.uniform(-4, 4, size=3)])
    return tfm


def brain_maps(
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    transform: sitk.Transform | None = None,
) -> BrainMaps:
    """Resample the template onto a ``(Z, Y, X)`` grid of ``spacing`` mm through ``transform`` (linear)."""
    tpl = load_mni_template()
    ref = reference_grid(shape, spacing)
    if transform is None:
        transform = sitk.AffineTransform(3)
    out = sitk.Resample(tpl, ref, transform, sitk.sitkLinear, 0.0, sitk.sitkVectorFloat32)
    arr = sitk.GetArrayFromImage(out)  # (Z, Y, X, 4)
    t1, gm, wm, brain_soft = (np.ascontiguousarray(arr[..., i]) for i in range(4))
    brain = brain_soft > 0.5
    gm = np.where(brain, gm, 0).astype(np.float32)
    wm = np.where(brain, wm, 0).astype(np.float32)
    csf = np.clip(brain.astype(np.float32) - gm - wm, 0.0, 1.0)
    return BrainMaps(
        t1=np.where(brain, t1, 0).astype(np.float32),
        gm=gm,
        wm=wm,
        csf=csf,
        brain=brain,
        spacing=tuple(float(s) for s in spacing),
        origin=tuple(ref.GetOrigin()),
        transform=transform,
    )
