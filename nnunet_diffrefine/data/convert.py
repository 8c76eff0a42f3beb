"""BraTS -> nnU-Net v2 raw dataset converter.

Reads a BraTS release folder with one sub-folder per case and writes ``DatasetXXX_NAME`` in the
nnU-Net raw folder::

    imagesTr/CASE_0000.nii.gz ..    the images of labelled cases (T1n, T1c, T2w, T2-FLAIR; MEN-RT: T1c)
    labelsTr/CASE.nii.gz            the labels, in the challenge's numbering
    imagesTs/CASE_0000.nii.gz ..    cases without a segmentation
    dataset.json                    region-based (or label-based) nnU-Net dataset.json of the challenge
    conversion_report.json          converted and skipped cases, with reasons

The challenge's label convention (:mod:`nnunet_diffrefine.data.challenges`: labels, regions, lesion-wise
parameters) is given with ``challenge`` or detected from the file names, the case ids and the labels
found (:func:`~nnunet_diffrefine.data.challenges.detect_convention`, which refuses where they do not
decide). Three file layouts are understood:

* BraTS 2023 and 2024 (GLI, PED, MEN, SSA, MET, GoAT): ``CASE/CASE-t1n.nii.gz``, ``-t1c``, ``-t2w``,
  ``-t2f`` and an optional ``-seg``.
* BraTS 2021: ``CASE/CASE_t1.nii.gz``, ``_t1ce``, ``_t2``, ``_flair`` and an optional ``_seg``, labels
  {0, 1, 2, 4}; label 4 (enhancing tumor) is written as 3.
* BraTS 2024 MEN-RT: ``CASE/CASE_t1c.nii.gz`` and an optional ``_gtv`` (one label, the GTV).

Sources may be ``.nii.gz`` or ``.nii``. Every case is validated before anything is written; the source
folder is only read.
"""

from __future__ import annotations

import gzip
import multiprocessing
import os
import shutil
import struct
import warnings
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from tqdm import tqdm

from nnunet_diffrefine.data.brats import FILE_ENDING, dataset_folder_name, existing_dataset_with_id
from nnunet_diffrefine.data.challenges import (
    CONVENTIONS,
    FILE_LAYOUTS,
    LAYOUT_2021,
    LAYOUT_2023,
    LAYOUT_MEN_RT,
    Convention,
    FileLayout,
    convention_dataset_json,
    detect_convention,
    get_convention,
)
from nnunet_diffrefine.errors import InputError
from nnunet_diffrefine.utils.io import OutputExistsError, atomic_output_dir, write_json

Layout = FileLayout
BRATS2023, BRATS2021, MEN_RT = LAYOUT_2023, LAYOUT_2021, LAYOUT_MEN_RT
LAYOUTS: dict[str, FileLayout] = dict(FILE_LAYOUTS)
SOURCE_ENDINGS: tuple[str, ...] = (".nii.gz", ".nii")

REPORT_FILE = "conversion_report.json"


@dataclass(frozen=True)
class CaseCheck:
    """Outcome of validating one case folder (small and picklable: no voxel data).

    ``images`` are the source images in nnU-Net channel order; ``seg`` is ``None`` for an unlabelled
    case; ``labels`` the label values its segmentation holds; ``reason`` is ``None`` for a valid case and
    otherwise one message naming the file and the problem.
    """

    case: str
    images: tuple[str, ...] = ()
    seg: str | None = None
    reason: str | None = None
    labels: tuple[int, ...] = ()


# --------------------------------------------------------------------------------------------- layout


def _case_folders(source: Path) -> list[Path]:
    """Case sub-folders of ``source``, sorted; hidden folders and loose files are ignored."""
    return sorted(p for p in source.iterdir() if p.is_dir() and not p.name.startswith("."))


def _layouts_in_folder(folder: Path) -> set[str]:
    """Keys of the layouts whose file naming occurs in ``folder`` (judged by file suffixes only)."""
    found = set()
    names = [p.name for p in folder.iterdir() if p.is_file()]
    for layout in LAYOUTS.values():
        suffixes = [layout.tag(s) + e for s in (*layout.modalities, layout.seg) for e in SOURCE_ENDINGS]
        if any(name.endswith(suffix) for name in names for suffix in suffixes):
            found.add(layout.key)
    return found


def detect_layout(source: str | os.PathLike) -> str:
    """The key of the file layout (``"brats2023"``, ``"brats2021"``, ``"brats-men-rt"``) of ``source``'s
    case folders, judged by file names.

    Raises :class:`InputError` if a case folder follows no known naming, or if the source mixes them.
    """
    source = Path(source)
    per_layout: dict[str, list[str]] = {key: [] for key in LAYOUTS}
    for folder in _case_folders(source):
        found = _layouts_in_folder(folder)
        if not found:
            raise InputError(
                f"cannot detect the layout of {folder}: it holds no BraTS 2023 (CASE-t1n.nii.gz, ...), "
                "BraTS 2021 (CASE_t1.nii.gz, ...) nor MEN-RT (CASE_t1c.nii.gz) files; remove it or pass --layout"
            )
        if len(found) > 1:
            raise InputError(
                f"{folder} mixes {' and '.join(LAYOUTS[k].title for k in sorted(found))} file names"
            )
        per_layout[found.pop()].append(folder.name)
    used = {key: cases for key, cases in per_layout.items() if cases}
    if not used:
        raise InputError(f"{source} contains no case folders")
    if len(used) > 1:
        examples = ", ".join(f"{LAYOUTS[k].title}: {cases[0]}" for k, cases in used.items())
        raise InputError(f"{source} mixes cases of several layouts ({examples}); convert them separately")
    return next(iter(used))


def layout_labels(layout: str) -> tuple[int, ...]:
    """Every label value some convention with this file layout allows (before the convention is known)."""
    return tuple(sorted({v for c in CONVENTIONS.values() if c.layout.key == layout for v in c.source_values}))


# ------------------------------------------------------------------------------------------ validation


def _fmt(values: Sequence[float]) -> str:
    return "(" + ", ".join(repr(round(float(v), 6)) for v in values) + ")"


def _sitk_message(error: Exception) -> str:
    """The useful line of a SimpleITK exception (it starts with the C++ source location)."""
    text = str(error).strip()
    for line in text.splitlines():
        if "ERROR:" in line:
            return line.split("ERROR:", 1)[1].strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip() if lines else type(error).__name__


def _nifti_payload_problem(path: Path) -> str | None:
    """Check that a NIfTI file is complete, which SimpleITK does not do.

    ITK reads a truncated ``.nii`` or ``.nii.gz`` without complaint (the missing voxels are garbage), so
    the whole file is decompressed here (gzip checks its CRC) and its length is compared with what the
    header announces (``vox_offset + prod(dim) * bitpix / 8`` bytes). Returns a problem or ``None``.
    """
    try:
        with open(path, "rb") as f:
            compressed = f.read(2) == b"\x1f\x8b"  # by content: an uncompressed file may be named .nii.gz
        with (gzip.open if compressed else open)(path, "rb") as f:
            header = f.read(540)
            total = len(header)
            while chunk := f.read(1 << 22):
                total += len(chunk)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        return str(e) or type(e).__name__
    needed = None
    for endian in "<>":
        size = struct.unpack(endian + "i", header[:4])[0] if len(header) >= 4 else 0
        if size == 348 and len(header) >= 348:
            dim = struct.unpack(endian + "8h", header[40:56])
            bitpix = struct.unpack(endian + "h", header[72:74])[0]
            offset = int(struct.unpack(endian + "f", header[108:112])[0])
        elif size == 540 and len(header) >= 540:
            bitpix = struct.unpack(endian + "h", header[14:16])[0]
            dim = struct.unpack(endian + "8q", header[16:80])
            offset = struct.unpack(endian + "q", header[168:176])[0]
        else:
            continue
        if 1 <= dim[0] <= 7:
            voxels = int(np.prod([max(int(d), 1) for d in dim[1 : dim[0] + 1]]))
            needed = max(offset, size) + voxels * bitpix // 8
        break
    if needed is not None and total < needed:
        return f"file is truncated ({total} bytes, the header announces {needed})"
    return None


def _find_file(folder: Path, stem: str) -> tuple[Path | None, str | None]:
    """``folder/stem.nii.gz`` or ``folder/stem.nii``; returns (path, problem)."""
    found = [folder / (stem + e) for e in SOURCE_ENDINGS if (folder / (stem + e)).exists()]
    if len(found) > 1:
        return None, f"both {found[0].name} and {found[1].name} exist; keep one"
    if found and found[0].is_dir():
        return None, f"{found[0].name} is a directory, not an image file"
    if found and found[0].stat().st_size == 0:
        return None, f"{found[0].name} is an empty file (0 bytes)"
    return (found[0], None) if found else (None, None)


def _same_geometry(img: sitk.Image, ref: sitk.Image, tolerance: float) -> str | None:
    """Name of the first geometry property of ``img`` that differs from ``ref``, or ``None``."""
    if img.GetSize() != ref.GetSize():
        return "size"
    spacing, ref_spacing = np.array(img.GetSpacing()), np.array(ref.GetSpacing())
    if np.any(np.abs(spacing - ref_spacing) > tolerance * np.abs(ref_spacing)):
        return "spacing"
    origin_tol = tolerance * float(np.max(np.abs(ref_spacing)))
    if np.linalg.norm(np.array(img.GetOrigin()) - np.array(ref.GetOrigin())) > origin_tol:
        return "origin"
    if np.any(np.abs(np.array(img.GetDirection()) - np.array(ref.GetDirection())) > tolerance):
        return "direction"
    return None


def _geometry_value(img: sitk.Image, what: str) -> str:
    getter = {
        "size": img.GetSize,
        "spacing": img.GetSpacing,
        "origin": img.GetOrigin,
        "direction": img.GetDirection,
    }
    value = getter[what]()
    return str(tuple(value)) if what == "size" else _fmt(value)


def _case_files(folder: Path, spec: Layout) -> tuple[list[Path], Path | None, str | None]:
    """``(images, segmentation or None, problem)``: the layout's images and the optional segmentation."""
    case = folder.name
    images: list[Path] = []
    missing: list[str] = []
    for suffix in spec.modalities:
        path, problem = _find_file(folder, case + spec.tag(suffix))
        if problem:
            return [], None, f"{case}: {problem}"
        if path is None:
            missing.append(suffix)
        else:
            images.append(path)
    if missing:
        expected = ", ".join(str(folder / f"{case}{spec.tag(s)}{FILE_ENDING}") for s in missing)
        return [], None, f"{case}: missing {', '.join(missing)} (expected {expected})"
    seg, problem = _find_file(folder, case + spec.tag(spec.seg))
    return images, seg, (f"{case}: {problem}" if problem else None)


def _read_scalar_3d(path: Path, case: str) -> tuple[sitk.Image | None, str | None]:
    """The image at ``path`` read fully, or the reason it is not a complete scalar 3D image."""
    try:
        img = sitk.ReadImage(str(path))
    except RuntimeError as e:
        return None, f"{case}: {path.name} is unreadable: {_sitk_message(e)}"
    problem = _nifti_payload_problem(path)
    if problem:
        return None, f"{case}: {path.name} is unreadable: {problem}"
    if img.GetDimension() != 3:
        return None, f"{case}: {path.name} is {img.GetDimension()}D, expected a 3D image"
    if img.GetNumberOfComponentsPerPixel() != 1:
        return None, (
            f"{case}: {path.name} has {img.GetNumberOfComponentsPerPixel()} components per voxel, "
            "expected a scalar image"
        )
    return img, None


def _label_values(img: sitk.Image, path: Path, case: str) -> tuple[tuple[int, ...], str | None]:
    """``(values, problem)``: the integer label values of a segmentation, or why they are not integers."""
    values = np.unique(sitk.GetArrayViewFromImage(img))
    if np.issubdtype(values.dtype, np.floating):
        odd = values[~np.isfinite(values) | (values != np.round(values))]
        if odd.size:
            return (), f"{case}: {path.name} contains non-integer label {float(odd[0])}"
    return tuple(int(v) for v in values), None


def label_problem(
    values: Sequence[int], seg_name: str, case: str, allowed: Sequence[int], title: str
) -> str | None:
    """Why the label ``values`` of ``case``'s segmentation are not all in ``allowed`` (None when they are)."""
    unknown = sorted(int(v) for v in values if int(v) not in allowed)
    if not unknown:
        return None
    allowed_text = ",".join(str(v) for v in allowed)
    if len(unknown) == 1:
        what = f"label {unknown[0]}, not a {title} label"
    else:
        what = f"labels {', '.join(map(str, unknown))}, not {title} labels"
    return f"{case}: {seg_name} contains {what} (allowed {allowed_text})"


def check_case(
    folder: str | os.PathLike, layout: str, tolerance: float = 1e-3, challenge: str | None = None
) -> CaseCheck:
    """Validate one case folder of the given layout; never raises for a bad case.

    ``challenge``: the convention whose labels the segmentation may hold (None: any convention with this
    layout; the labels found are returned for :func:`detect_convention`).
    Checks, in this order, stopping at the first problem: the images exist (``.nii.gz`` or ``.nii``);
    every image and the optional segmentation is a complete file that SimpleITK reads fully, is 3D and
    scalar; all of them share the first image's geometry: size (voxels, x/y/z) exactly, spacing within
    ``tolerance`` relative to the T1n spacing, origin within ``tolerance`` times the largest T1n voxel size
    (Euclidean distance in mm, i.e. a fraction of a voxel), direction cosines within ``tolerance``
    absolute; the segmentation holds integers from the layout's label set only. (NaN voxels need no check:
    ITK's NIfTI reader, and so nnU-Net's SimpleITKIO, reads them as 0.)
    """
    folder = Path(folder)
    spec = LAYOUTS[layout]
    convention = get_convention(challenge) if challenge else None
    allowed = convention.source_values if convention else layout_labels(layout)
    title = convention.title if convention else spec.title
    case = folder.name
    labels: tuple[int, ...] = ()
    images, seg, problem = _case_files(folder, spec)
    if problem:
        return CaseCheck(case, reason=problem)
    tags = [spec.tag(s) for s in spec.modalities] + ([spec.tag(spec.seg)] if seg else [])
    ref: sitk.Image | None = None
    for path, tag in zip([*images, *([seg] if seg else [])], tags, strict=True):
        img, problem = _read_scalar_3d(path, case)
        if problem:
            return CaseCheck(case, reason=problem)
        what = _same_geometry(img, ref, tolerance) if ref is not None else None
        if what:
            return CaseCheck(
                case,
                reason=f"{case}: {what} of {tag} {_geometry_value(img, what)} differs from "
                f"{tags[0]} {_geometry_value(ref, what)}",
            )
        if ref is None:
            ref = img
        if path == seg:
            labels, problem = _label_values(img, path, case)
            problem = problem or label_problem(labels, path.name, case, allowed, title)
            if problem:
                return CaseCheck(case, reason=problem)
    return CaseCheck(case, images=tuple(str(p) for p in images), seg=str(seg) if seg else None, labels=labels)


def check_cases(
    folders: Sequence[Path],
    layout: str,
    tolerance: float = 1e-3,
    num_processes: int = 1,
    challenge: str | None = None,
) -> list[CaseCheck]:
    """:func:`check_case` for every folder, in ``num_processes`` worker processes, results in input order."""
    num_processes = max(1, min(int(num_processes), len(folders)))
    bar = {"total": len(folders), "desc": "checking cases", "unit": "case", "disable": None}
    if num_processes == 1:
        return [check_case(f, layout, tolerance, challenge) for f in tqdm(folders, **bar)]
    results: dict[int, CaseCheck] = {}
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=num_processes, mp_context=context) as pool:
        futures = {pool.submit(check_case, f, layout, tolerance, challenge): i for i, f in enumerate(folders)}
        for future in tqdm(as_completed(futures), **bar):
            results[futures[future]] = future.result()
    return [results[i] for i in range(len(folders))]


# --------------------------------------------------------------------------------------------- writing


class _Linker:
    """Hard-links files, falling back to copying (with one warning) when linking fails."""

    def __init__(self, hardlink: bool) -> None:
        self.hardlink = hardlink

    def __call__(self, src: Path, dst: Path) -> None:
        if self.hardlink:
            try:
                os.link(src, dst)
                return
            except OSError as e:
                warnings.warn(
                    f"cannot hard-link {src} into {dst.parent} ({e}); copying the files instead",
                    RuntimeWarning,
                    stacklevel=3,
                )
                self.hardlink = False
        shutil.copyfile(src, dst)


def _write_image(src: Path, dst: Path, linker: _Linker) -> None:
    """``.nii.gz`` sources are linked or copied byte for byte, ``.nii`` sources recompressed."""
    if src.name.endswith(FILE_ENDING):
        linker(src, dst)
    else:
        sitk.WriteImage(sitk.ReadImage(str(src)), str(dst), useCompression=True)


def _write_seg(src: Path, dst: Path, spec: Convention, linker: _Linker) -> None:
    """Copy a segmentation, or rewrite it as uint8 with the convention's label map (same geometry)."""
    if not spec.label_map:
        _write_image(src, dst, linker)
        return
    seg = sitk.ReadImage(str(src))
    array = sitk.GetArrayViewFromImage(seg)
    out = array.astype(np.uint8)
    for old, new in spec.label_map.items():
        out[array == old] = new
    img = sitk.GetImageFromArray(out)
    img.CopyInformation(seg)
    sitk.WriteImage(img, str(dst), useCompression=True)


# ------------------------------------------------------------------------------------------------ main


def _resolve_raw_root(raw_root: str | os.PathLike | None) -> Path:
    if raw_root is None or str(raw_root) == "":
        raise InputError("no output folder: pass -o RAW_ROOT or set the nnUNet_raw environment variable")
    return Path(raw_root)


def _target_folder(source: Path, raw_root: Path, dataset_id: int, name: str, overwrite: bool) -> Path:
    """``raw_root/DatasetXXX_NAME``, refused when it overlaps the source, exists (without ``overwrite``)
    or its id is taken by another dataset."""
    try:
        folder_name = dataset_folder_name(dataset_id, name)
    except ValueError as e:
        raise InputError(str(e)) from None
    final = raw_root / folder_name
    src_resolved, final_resolved = source.resolve(), final.resolve()
    if (
        final_resolved == src_resolved
        or src_resolved in final_resolved.parents
        or final_resolved in src_resolved.parents
    ):
        raise InputError(f"the dataset folder {final} and the source {source} must not contain each other")
    if final.exists() and not overwrite:
        raise OutputExistsError(
            f"{final} already exists; refusing to overwrite it (remove it or pass --overwrite)"
        )
    other = existing_dataset_with_id(raw_root, dataset_id)
    if other is not None and other.name != folder_name:
        raise InputError(
            f"dataset id {int(dataset_id)} is already used by {other}; nnU-Net needs unique ids "
            "(choose another id or remove that folder)"
        )
    return final


def _valid_cases(
    source: Path, layout: str, challenge: str, tolerance: float, num_processes: int, strict: bool
) -> tuple[list[CaseCheck], list[CaseCheck], Convention]:
    """``(valid, invalid, convention)``: every case folder checked, the convention given or detected
    (errors: none valid, or any invalid with ``strict``)."""
    folders = _case_folders(source)
    if not folders:
        raise InputError(f"{source} contains no case folders")
    given = None if challenge == "auto" else challenge
    checks = check_cases(folders, layout, tolerance=tolerance, num_processes=num_processes, challenge=given)
    labelled = [c for c in checks if not c.reason and c.seg]
    if given:
        convention = get_convention(given)
    else:
        convention = detect_convention(
            LAYOUTS[layout], [c.case for c in checks], {c.case: set(c.labels) for c in labelled}
        )
        checks = [
            CaseCheck(c.case, reason=problem)
            if not c.reason
            and c.seg
            and (
                problem := label_problem(
                    c.labels, Path(c.seg).name, c.case, convention.source_values, convention.title
                )
            )
            else c
            for c in checks
        ]
    bad = [c for c in checks if c.reason]
    good = [c for c in checks if not c.reason]
    if strict and bad:
        raise InputError(
            f"{len(bad)} of {len(checks)} cases are invalid (--strict, nothing written): "
            + "; ".join(c.reason or "" for c in bad)
        )
    if not good:
        more = f"; and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise InputError(f"no valid case in {source}; " + "; ".join(c.reason or "" for c in bad[:5]) + more)
    return good, bad, convention


def _write_cases(folder: Path, good: list[CaseCheck], spec: Convention, linker: _Linker) -> None:
    """imagesTr, labelsTr and (for cases without segmentation) imagesTs under ``folder``."""
    for sub in ("imagesTr", "labelsTr") + (("imagesTs",) if any(not c.seg for c in good) else ()):
        (folder / sub).mkdir()
    for c in tqdm(good, desc="writing cases", unit="case", disable=None):
        images_dir = folder / ("imagesTr" if c.seg else "imagesTs")
        for channel, src in enumerate(c.images):
            _write_image(Path(src), images_dir / f"{c.case}_{channel:04d}{FILE_ENDING}", linker)
        if c.seg:
            _write_seg(Path(c.seg), folder / "labelsTr" / f"{c.case}{FILE_ENDING}", spec, linker)


def _conversion_report(
    source: Path, convention: Convention, final: Path, good, bad, linker: _Linker, tolerance: float
) -> dict:
    train, test = [c for c in good if c.seg], [c for c in good if not c.seg]
    return {
        "source": str(source.resolve()),
        "layout": convention.layout.key,
        "challenge": convention.key,
        "dataset": final.name,
        "label_map": {str(k): v for k, v in convention.label_map.items()},
        "hardlinked": bool(linker.hardlink),
        "tolerance": tolerance,
        "num_train": len(train),
        "num_test": len(test),
        "num_skipped": len(bad),
        "train": [c.case for c in train],
        "test": [c.case for c in test],
        "skipped": [{"case": c.case, "reason": c.reason} for c in bad],
    }


def convert_brats(
    source: str | os.PathLike,
    raw_root: str | os.PathLike | None,
    dataset_id: int,
    name: str,
    layout: str = "auto",
    strict: bool = False,
    hardlink: bool = False,
    tolerance: float = 1e-3,
    num_processes: int = 1,
    overwrite: bool = False,
    label_based: bool = False,
    challenge: str = "auto",
) -> Path:
    """Convert a BraTS release folder into the nnU-Net raw dataset ``raw_root/DatasetXXX_NAME``.

    ``source``: folder with one sub-folder per case (the sub-folder name becomes the nnU-Net case id).
    ``raw_root``: nnU-Net raw folder (the command line passes ``$nnUNet_raw`` when ``-o`` is not given). ``layout``: ``"auto"`` or a key of
    :data:`LAYOUTS`; ``challenge``: ``"auto"`` or a key of
    :data:`~nnunet_diffrefine.data.challenges.CONVENTIONS` (its layout then applies). Invalid cases (see
    :func:`check_case` for the checks and the meaning of ``tolerance``; a label outside the convention
    is one) are skipped and listed in ``conversion_report.json``; with ``strict`` any invalid case raises
    :class:`InputError` and nothing is written. ``hardlink``: hard-link ``.nii.gz`` images (and
    segmentations that need no relabelling) instead of copying them. The dataset folder appears
    complete or not at all; an existing one is replaced only with ``overwrite``. The dataset.json is
    the convention's region-based one unless ``label_based`` (one softmax class per label). Returns the
    dataset folder.
    """
    source = Path(source)
    if not source.is_dir():
        raise InputError(f"source folder {source} does not exist or is not a folder")
    if layout != "auto" and layout not in LAYOUTS:
        raise InputError(f"unknown layout {layout!r}; use auto, {', '.join(LAYOUTS)}")
    given = get_convention(challenge) if challenge != "auto" else None
    if given and layout not in ("auto", given.layout.key):
        raise InputError(
            f"--layout {layout} does not fit --challenge {challenge}, whose files are named as {given.layout.title}"
        )
    if not tolerance >= 0:
        raise InputError(f"tolerance must be >= 0, got {tolerance}")
    final = _target_folder(source, _resolve_raw_root(raw_root), dataset_id, name, overwrite)
    key = given.layout.key if given else (detect_layout(source) if layout == "auto" else layout)
    good, bad, convention = _valid_cases(source, key, challenge, tolerance, num_processes, strict)
    linker = _Linker(hardlink)
    with atomic_output_dir(final, overwrite=overwrite) as tmp:
        _write_cases(tmp, good, convention, linker)
        num_train = sum(1 for c in good if c.seg)
        description = f"{convention.title} cases converted by nnunet-diffrefine convert"
        dataset_json = convention_dataset_json(
            convention, num_train, name, label_based, description=description, file_ending=FILE_ENDING
        )
        write_json(dataset_json, tmp / "dataset.json")
        write_json(
            _conversion_report(source, convention, final, good, bad, linker, tolerance), tmp / REPORT_FILE
        )
    return final
