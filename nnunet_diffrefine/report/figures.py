"""PNG figures of the slices of largest tumor extent with colour-coded sub-region overlays.

One PNG per plane (``axial.png``, ``coronal.png``, ``sagittal.png``) at the slice of largest WT area
(:mod:`.measurements`): columns T1c and T2-FLAIR (or the bare segmentation when no image is given),
one row for the prediction and, with a reference, a second row for it (as the seed paper's Figure 5).

Conventions, stated in every figure's caption:

- Overlay colours from the label convention (:mod:`.vocabulary`; BraTS 2023 :data:`LABEL_COLOURS`:
  NC red, ED green, ET yellow; 2024 also RC blue, CC magenta; MEN-RT GTV orange) blended at
  :data:`OVERLAY_ALPHA` over the grey image: ``pixel = (1 - alpha) * grey + alpha * colour``.
- Radiological display: axial and coronal slices show the patient's right on the image left,
  anterior (axial) or superior (coronal) at the top; sagittal slices show anterior on the left,
  superior at the top. Slices come from the LPS view (:mod:`.orientation`), so any file direction works.
- Physical aspect ratio (anisotropic voxels are drawn to scale) and a scale bar in mm.
- The axial figure draws the two bidimensional diameters (cyan) on the T2-FLAIR prediction panel.
- Grey levels: each image is windowed between the 0.5th and 99.5th percentile of its non-zero voxels.

Rendering uses matplotlib's Agg canvas directly (no pyplot state) with fixed fonts and sizes and no
PNG metadata, so identical inputs give byte-identical files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.patheffects import withStroke

from nnunet_diffrefine.report.diameters import bidimensional
from nnunet_diffrefine.report.inputs import CaseInputs
from nnunet_diffrefine.report.orientation import PLANES, LPSView
from nnunet_diffrefine.report.vocabulary import vocabulary

LABEL_COLOURS: dict[int, tuple[int, int, int]] = vocabulary().colours
"""Overlay colour (RGB 0-255) of each BraTS 2023 label: NC red, ED green, ET yellow."""

OVERLAY_ALPHA = 0.45
"""Opacity of the label colours over the grey image."""

DIAMETER_COLOUR = (0.0, 1.0, 1.0)
"""Colour of the bidimensional diameter lines (cyan)."""

DISPLAY_IMAGES: tuple[tuple[str, str], ...] = (("T1c", "T1c"), ("T2F", "T2-FLAIR"))
"""(channel, title) of the image columns."""

DPI = 100
PANEL_PX = 400  # panel width in pixels (height follows the physical aspect ratio, at most 2 x width)
MIN_WIDTH_PX = 640  # room for the title, legend and caption however narrow the panels
_LEFT, _RIGHT, _TOP, _BOTTOM, _GAP, _TITLE = 24, 24, 40, 78, 16, 20

ORIENTATION_LETTERS: dict[str, tuple[str, str, str, str]] = {
    "axial": ("R", "L", "A", "P"),  # image left, right, top, bottom
    "coronal": ("R", "L", "S", "I"),
    "sagittal": ("A", "P", "S", "I"),
}

CAPTION = (
    "Radiological convention: patient's right on image left (axial, coronal); sagittal: anterior on "
    "image left. Drawn to physical scale."
)

_RC = {
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "text.color": "white",
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "path.simplify": False,
    "image.resample": False,
}


def window(image: np.ndarray) -> np.ndarray:
    """``image`` scaled to [0, 1] between the 0.5th and 99.5th percentile of its non-zero voxels."""
    values = image[image != 0]
    if values.size == 0:
        return np.zeros(image.shape, dtype=np.float32)
    lo, hi = np.percentile(values, [0.5, 99.5])
    if hi <= lo:
        return (image > lo).astype(np.float32)
    return np.clip((image - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def overlay(
    grey: np.ndarray, labels: np.ndarray, colours: dict[int, tuple[int, int, int]] | None = None
) -> np.ndarray:
    """RGB ``(rows, cols, 3)`` in [0, 1]: ``grey`` with ``colours`` (label -> RGB 0-255; default
    :data:`LABEL_COLOURS`) blended at :data:`OVERLAY_ALPHA`."""
    rgb = np.repeat(grey[..., None], 3, axis=-1).astype(np.float64)
    for label, colour in (LABEL_COLOURS if colours is None else colours).items():
        where = labels == label
        rgb[where] = (1.0 - OVERLAY_ALPHA) * rgb[where] + OVERLAY_ALPHA * np.asarray(colour) / 255.0
    return rgb


def display_slice(volume_lps: np.ndarray, plane: str, index: int) -> np.ndarray:
    """The 2D slice of an ``(S, P, L)`` volume as displayed (see the module docstring)."""
    if plane == "axial":
        return volume_lps[index]
    if plane == "coronal":
        return volume_lps[:, index, :][::-1]
    return volume_lps[:, :, index][::-1]


def display_spacing(view: LPSView, plane: str) -> tuple[float, float]:
    """``(row, col)`` pixel size in mm of a displayed slice of ``plane``."""
    s, p, lr = view.spacing
    return {"axial": (p, lr), "coronal": (s, lr), "sagittal": (s, p)}[plane]


def _scale_bar_mm(width_mm: float) -> float:
    fits = [v for v in (1, 2, 5, 10, 20, 50, 100) if v <= 0.25 * width_mm]
    return float(fits[-1] if fits else 1)


def _panel_size(height_mm: float, width_mm: float) -> tuple[int, int]:
    width, height = PANEL_PX, round(PANEL_PX * height_mm / width_mm)
    if height > 2 * PANEL_PX:
        height, width = 2 * PANEL_PX, round(2 * PANEL_PX * width_mm / height_mm)
    return int(width), int(height)


def _slice_index(measurements: dict, case: CaseInputs, view: LPSView, plane: str) -> tuple[int, str]:
    """View index of the slice to draw and why it was chosen."""
    largest = (measurements.get("largest_slices") or {}).get(plane)
    if largest is not None:
        return int(largest["view_index"]), "largest tumor extent"
    if case.reference is not None:
        ref = view.apply(case.reference > 0)
        axis = PLANES.index(plane)
        areas = ref.sum(axis=tuple(a for a in range(3) if a != axis))
        if areas.any():
            return int(np.argmax(areas)), "largest extent of the reference (no tumor predicted)"
    return view.apply(case.segmentation).shape[PLANES.index(plane)] // 2, "middle slice (no tumor segmented)"


def _draw_panel(ax, rgb: np.ndarray, spacing: tuple[float, float], plane: str, title: str) -> None:
    height_mm, width_mm = rgb.shape[0] * spacing[0], rgb.shape[1] * spacing[1]
    ax.imshow(rgb, extent=(0.0, width_mm, height_mm, 0.0), interpolation="nearest", aspect="auto")
    ax.set_xlim(0.0, width_mm)
    ax.set_ylim(height_mm, 0.0)
    ax.set_axis_off()
    ax.set_title(title, fontsize=9, color="white", pad=4)
    left, right, top, bottom = ORIENTATION_LETTERS[plane]
    outline = [withStroke(linewidth=2, foreground="black")]
    style = {
        "color": "white",
        "fontsize": 9,
        "fontweight": "bold",
        "transform": ax.transAxes,
        "path_effects": outline,
    }
    ax.text(0.015, 0.5, left, ha="left", va="center", **style)
    ax.text(0.985, 0.5, right, ha="right", va="center", **style)
    ax.text(0.5, 0.985, top, ha="center", va="top", **style)
    ax.text(0.5, 0.015, bottom, ha="center", va="bottom", **style)
    bar = _scale_bar_mm(width_mm)
    x0, y0 = 0.05 * width_mm, 0.93 * height_mm
    ax.plot([x0, x0 + bar], [y0, y0], color="white", linewidth=2, solid_capstyle="butt")
    ax.text(
        x0 + bar / 2,
        y0 - 0.02 * height_mm,
        f"{bar:g} mm",
        color="white",
        fontsize=7,
        ha="center",
        va="bottom",
        path_effects=outline,
    )


def windowed_images(case: CaseInputs) -> dict[str, np.ndarray]:
    """The displayed channels of ``case``, windowed to [0, 1] (:func:`window`), in file order."""
    return {name: window(case.images[name]) for name, _ in DISPLAY_IMAGES if name in case.images}


def render_plane(
    case: CaseInputs,
    measurements: dict,
    plane: str,
    path: Path,
    windowed: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Write the PNG of ``plane`` to ``path``; returns its description with each panel's pixel box
    ``[left, top, right, bottom]`` (pixels from the top-left corner of the PNG). ``windowed``: the
    output of :func:`windowed_images`, to compute it once for several planes."""
    windowed = windowed_images(case) if windowed is None else windowed
    words = vocabulary(case.convention)
    tumor_labels = words.subregions[words.tumor]
    view = LPSView.of(case.grid.GetDirection(), case.grid.GetSpacing(), case.segmentation.shape)
    index, chosen = _slice_index(measurements, case, view, plane)
    spacing = display_spacing(view, plane)
    rows = [("prediction", display_slice(view.apply(case.segmentation), plane, index))]
    if case.reference is not None:
        rows.append(("reference", display_slice(view.apply(case.reference), plane, index)))
    columns = [(name, title) for name, title in DISPLAY_IMAGES if name in windowed] or [
        (None, "segmentation")
    ]
    greys = {
        name: display_slice(view.apply(windowed[name]), plane, index) if name else None for name, _ in columns
    }
    shape = rows[0][1].shape
    pw, ph = _panel_size(shape[0] * spacing[0], shape[1] * spacing[1])
    panels_width = len(columns) * pw + (len(columns) - 1) * _GAP
    width = max(_LEFT + panels_width + _RIGHT, MIN_WIDTH_PX)
    first_left = (width - panels_width) // 2
    height = _TOP + len(rows) * (_TITLE + ph) + (len(rows) - 1) * _GAP + _BOTTOM

    panels = []
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, facecolor="black")
        FigureCanvasAgg(fig)
        file_index = view.file_index(plane, index)
        fig.text(
            0.5,
            1 - 12 / height,
            f"{plane} slice {file_index} (file axis {'ZYX'[view.file_axis(plane)]}), {chosen}",
            ha="center",
            va="top",
            fontsize=10,
        )
        for r, (row_name, labels) in enumerate(rows):
            top = _TOP + r * (_TITLE + ph + _GAP) + _TITLE
            for c, (name, title) in enumerate(columns):
                left = first_left + c * (pw + _GAP)
                ax = fig.add_axes((left / width, 1 - (top + ph) / height, pw / width, ph / height))
                grey = greys[name] if name else np.zeros(shape, dtype=np.float32)
                _draw_panel(ax, overlay(grey, labels, words.colours), spacing, plane, f"{title} · {row_name}")
                if plane == "axial" and row_name == "prediction" and c == len(columns) - 1:
                    dims = bidimensional(np.isin(labels, tumor_labels), spacing)
                    for line in (dims.long_line, dims.perpendicular_line) if dims else ():
                        (r0, c0), (r1, c1) = line
                        ax.plot([c0, c1], [r0, r1], color=DIAMETER_COLOUR, linewidth=1.2)
                panels.append(
                    {"image": title, "labels": row_name, "bbox_px": [left, top, left + pw, top + ph]}
                )
        handles = [
            Patch(facecolor=np.asarray(colour) / 255.0, edgecolor="none", label=words.legend(value))
            for value, colour in words.colours.items()
        ]
        fig.legend(
            handles=handles,
            loc="lower center",
            bbox_to_anchor=(0.5, 30 / height),
            ncol=len(handles),
            frameon=False,
            fontsize=7,
            labelcolor="white",
            handlelength=1.2,
            columnspacing=1.0,
        )
        fig.text(0.5, 8 / height, CAPTION, ha="center", va="bottom", fontsize=6, wrap=True)
        fig.savefig(path, format="png", dpi=DPI, facecolor="black", metadata={"Software": None})
    return {
        "file": path.name,
        "plane": plane,
        "file_axis": "ZYX"[view.file_axis(plane)],
        "file_index": file_index,
        "size_px": [width, height],
        "panels": panels,
    }


def render_figures(case: CaseInputs, measurements: dict, folder: str | Path) -> list[dict[str, Any]]:
    """Write ``axial.png``, ``coronal.png`` and ``sagittal.png`` into ``folder``; returns their descriptions."""
    folder = Path(folder)
    windowed = windowed_images(case)
    return [render_plane(case, measurements, plane, folder / f"{plane}.png", windowed) for plane in PLANES]
