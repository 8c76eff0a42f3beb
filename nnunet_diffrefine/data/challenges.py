"""Per-challenge BraTS label conventions: one declarative table that every stage reads.

BraTS numbers its labels differently per year and sub-challenge (facts from the challenges' data
descriptions and the official scorer's bundled configs ``gli``, ``ped``, ``mets``, ``MenRT``, ``GoAT``):

================== ============================================ ============ ===============
 convention         labels in the label files                    TC           WT
================== ============================================ ============ ===============
 brats2021          1 NCR, 2 ED, 4 ET (written as 3)             {1,3}        {1,2,3}
 brats2023-*        1 NETC (NCR), 2 SNFH (ED), 3 ET              {1,3}        {1,2,3}
 brats2024-gli      1 NETC, 2 SNFH, 3 ET, 4 RC (resection cav.)  {1,3}        {1,2,3}
 brats2024-met      1 NETC, 2 SNFH, 3 ET, 4 RC                   {1,3}        {1,2,3}
 brats2024-ped      1 ET, 2 NETC, 3 CC (cystic component), 4 ED  {1,2,3}      {1,2,3,4}
 brats2024-goat     as 2023                                      {1,3}        {1,2,3}
 brats2024-men-rt   1 GTV (T1c only)                             -            -
================== ============================================ ============ ===============

A :class:`Convention` holds the source file naming, the label values and names (and a colour for
overlays), the regions nnU-Net trains on with their ``regions_class_order`` (checked on construction to
paint every label back exactly), the BraTS 2023 lesion-wise parameters of the sub-challenge and the
name of the official scorer's configuration. The converter writes the convention's key into
dataset.json (``"brats_convention"``, an extra key nnU-Net carries along), and later stages look it up
with :func:`convention_of_dataset`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from nnunet_diffrefine.errors import InputError

DATASET_JSON_KEY = "brats_convention"


@dataclass(frozen=True)
class LabelClass:
    """One label value of a convention (after the converter's mapping) and what it means.

    ``kind``: the tissue class (``core``, ``edema``, ``enhancing``, ``cavity``, ``cyst``, ``gtv``), used
    to write synthetic phantoms in this convention; ``colour``: RGB 0-255 for overlays.
    """

    value: int
    short: str
    name: str
    kind: str
    colour: tuple[int, int, int]


@dataclass(frozen=True)
class TumorRegion:
    """A scored region: ``short`` (``TC``), its dataset.json key (``tumor_core``) and its labels."""

    short: str
    key: str
    labels: tuple[int, ...]


@dataclass(frozen=True)
class FileLayout:
    """How a release names its files: ``CASE/CASE{separator}{suffix}.nii.gz``."""

    key: str
    title: str
    separator: str
    modalities: tuple[str, ...]
    """Image suffixes in nnU-Net channel order."""
    channel_names: tuple[str, ...]
    seg: str

    def tag(self, suffix: str) -> str:
        """``-t1c`` / ``_t1ce``: how a file is named in messages."""
        return f"{self.separator}{suffix}"


LAYOUT_2023 = FileLayout(
    "brats2023", "BraTS 2023", "-", ("t1n", "t1c", "t2w", "t2f"), ("T1n", "T1c", "T2w", "T2F"), "seg"
)
LAYOUT_2021 = FileLayout(
    "brats2021", "BraTS 2021", "_", ("t1", "t1ce", "t2", "flair"), ("T1n", "T1c", "T2w", "T2F"), "seg"
)
LAYOUT_MEN_RT = FileLayout("brats-men-rt", "BraTS MEN-RT", "_", ("t1c",), ("T1c",), "gtv")
FILE_LAYOUTS: dict[str, FileLayout] = {x.key: x for x in (LAYOUT_2023, LAYOUT_2021, LAYOUT_MEN_RT)}


@dataclass(frozen=True)
class Convention:
    """One challenge's labels, regions and scoring parameters (see the module docstring)."""

    key: str
    title: str
    layout: FileLayout
    labels: tuple[LabelClass, ...]
    regions: tuple[TumorRegion, ...]
    """Region-based training channels, in order (nnU-Net's ``labels`` entries after ``background``)."""
    regions_class_order: tuple[int, ...]
    case_prefixes: tuple[str, ...] = ()
    """Case id prefixes of the release (``BraTS-PED``), used by auto-detection."""
    label_map: Mapping[int, int] = field(default_factory=dict)
    """Source label -> written label, for the labels that change (BraTS 2021: 4 -> 3)."""
    lesion_dilation: int = 3
    lesion_min_volume_mm3: float = 50.0
    """BraTS 2023 lesion-wise parameters of the sub-challenge (dilation in voxels, volume in mm³)."""
    official_config: str | None = None
    """The official scorer's configuration for this convention (``gli``, ``ped``, ``mets``, ``MenRT``, ``GoAT``)."""

    def __post_init__(self) -> None:
        values = [c.value for c in self.labels]
        if values != list(range(1, len(values) + 1)):
            raise ValueError(f"{self.key}: labels must be 1..N in order, got {values}")
        if len(self.regions) != len(self.regions_class_order):
            raise ValueError(f"{self.key}: one regions_class_order entry per region")
        for value in values:
            if self.paint(value) != value:
                raise ValueError(f"{self.key}: the regions paint label {value} as {self.paint(value)}")

    def paint(self, value: int) -> int:
        """The label nnU-Net writes for a voxel of label ``value`` from its region predictions
        (each region that holds the voxel paints its ``regions_class_order`` entry, in order)."""
        out = 0
        for region, paint in zip(self.regions, self.regions_class_order):
            if value in region.labels:
                out = paint
        return out

    @property
    def values(self) -> tuple[int, ...]:
        """Label values in the written label files, background included."""
        return (0, *(c.value for c in self.labels))

    @property
    def source_values(self) -> tuple[int, ...]:
        """Label values in the release's own label files, background included."""
        inverse = {new: old for old, new in self.label_map.items()}
        return tuple(sorted(inverse.get(v, v) for v in self.values))

    def label(self, value: int) -> LabelClass:
        for c in self.labels:
            if c.value == value:
                return c
        raise KeyError(value)

    def region(self, short: str) -> TumorRegion:
        for r in self.regions:
            if r.short == short:
                return r
        raise KeyError(short)


_CORE, _EDEMA, _ENH = (255, 0, 0), (0, 255, 0), (255, 255, 0)  # the report's overlays: red, green, yellow
_CAVITY, _CYST, _GTV = (0, 128, 255), (255, 0, 255), (255, 128, 0)  # blue, magenta, orange

_LABELS_2023 = (
    LabelClass(1, "NC", "necrotic or non-enhancing tumor core", "core", _CORE),
    LabelClass(2, "ED", "peritumoral edema (invaded tissue)", "edema", _EDEMA),
    LabelClass(3, "ET", "enhancing tumor", "enhancing", _ENH),
)
_REGIONS_2023 = (
    TumorRegion("WT", "whole_tumor", (1, 2, 3)),
    TumorRegion("TC", "tumor_core", (1, 3)),
    TumorRegion("ET", "enhancing_tumor", (3,)),
)
_LABELS_2024_GLI = (
    LabelClass(1, "NETC", "non-enhancing tumor core", "core", _CORE),
    LabelClass(2, "SNFH", "surrounding non-enhancing FLAIR hyperintensity", "edema", _EDEMA),
    LabelClass(3, "ET", "enhancing tissue", "enhancing", _ENH),
    LabelClass(4, "RC", "resection cavity", "cavity", _CAVITY),
)
_REGIONS_2024_GLI = (*_REGIONS_2023, TumorRegion("RC", "resection_cavity", (4,)))


def _c2023(sub: str, title: str, dilation: int, min_volume: float) -> Convention:
    return Convention(
        f"brats2023-{sub}",
        f"BraTS 2023 {title}",
        LAYOUT_2023,
        _LABELS_2023,
        _REGIONS_2023,
        (2, 1, 3),
        case_prefixes=(f"BraTS-{sub.upper()}",),
        lesion_dilation=dilation,
        lesion_min_volume_mm3=min_volume,
        official_config="GoAT",  # et {3}, tc {1,3}, wt {1,2,3}: the 2023 numbering
    )


CONVENTIONS: dict[str, Convention] = {
    c.key: c
    for c in (
        Convention(
            "brats2021",
            "BraTS 2021 adult glioma",
            LAYOUT_2021,
            _LABELS_2023,
            _REGIONS_2023,
            (2, 1, 3),
            case_prefixes=("BraTS2021",),
            label_map={4: 3},
            official_config="GoAT",
        ),
        # BraTS 2023 lesion-wise parameters per sub-challenge (dilation voxels, minimum volume mm³)
        _c2023("gli", "adult glioma (GLI)", 3, 50.0),
        _c2023("ssa", "sub-Saharan Africa glioma (SSA)", 3, 50.0),
        _c2023("ped", "pediatric tumors (PED)", 3, 50.0),
        _c2023("men", "meningioma (MEN)", 1, 50.0),
        _c2023("met", "brain metastases (MET)", 1, 2.0),
        Convention(
            "brats2024-gli",
            "BraTS 2024 adult glioma post-treatment (GLI)",
            LAYOUT_2023,
            _LABELS_2024_GLI,
            _REGIONS_2024_GLI,
            (2, 1, 3, 4),
            case_prefixes=("BraTS-GLI",),
            official_config="gli",
        ),
        Convention(
            "brats2024-met",
            "BraTS 2024 brain metastases (MET)",
            LAYOUT_2023,
            _LABELS_2024_GLI,
            _REGIONS_2024_GLI,
            (2, 1, 3, 4),
            case_prefixes=("BraTS-MET",),
            lesion_dilation=1,
            lesion_min_volume_mm3=2.0,
            official_config="mets",
        ),
        Convention(
            "brats2024-ped",
            "BraTS 2024 pediatric tumors (PED)",
            LAYOUT_2023,
            (
                LabelClass(1, "ET", "enhancing tumor", "enhancing", _ENH),
                LabelClass(2, "NETC", "non-enhancing tumor core", "core", _CORE),
                LabelClass(3, "CC", "cystic component", "cyst", _CYST),
                LabelClass(4, "ED", "peritumoral edema", "edema", _EDEMA),
            ),
            (
                TumorRegion("WT", "whole_tumor", (1, 2, 3, 4)),
                TumorRegion("TC", "tumor_core", (1, 2, 3)),
                TumorRegion("CC", "cystic_component", (3,)),
                TumorRegion("ET", "enhancing_tumor", (1,)),
            ),
            (4, 2, 3, 1),
            case_prefixes=("BraTS-PED",),
            official_config="ped",
        ),
        Convention(
            "brats2024-goat",
            "BraTS 2024 generalizability across tumors (GoAT)",
            LAYOUT_2023,
            _LABELS_2023,
            _REGIONS_2023,
            (2, 1, 3),
            case_prefixes=("BraTS-GoAT",),
            official_config="GoAT",
        ),
        Convention(
            "brats2024-men-rt",
            "BraTS 2024 meningioma radiotherapy (MEN-RT)",
            LAYOUT_MEN_RT,
            (LabelClass(1, "GTV", "gross tumor volume", "gtv", _GTV),),
            (TumorRegion("GTV", "gtv", (1,)),),
            (1,),
            case_prefixes=("BraTS-MEN-RT",),
            lesion_dilation=1,
            official_config="MenRT",
        ),
    )
}
DEFAULT_CONVENTION = "brats2023-gli"
CHALLENGE_CHOICES: tuple[str, ...] = ("auto", *CONVENTIONS)


def get_convention(key: str) -> Convention:
    """The convention named ``key``; :class:`InputError` listing the known ones otherwise."""
    if key not in CONVENTIONS:
        raise InputError(f"unknown BraTS convention {key!r}; choose one of {', '.join(CONVENTIONS)}")
    return CONVENTIONS[key]


def convention_of_dataset(dataset_json: Mapping) -> Convention | None:
    """The convention a dataset.json declares (``brats_convention``), or None (a dataset from elsewhere)."""
    key = dataset_json.get(DATASET_JSON_KEY)
    if key is None:
        return None
    if not isinstance(key, str) or key not in CONVENTIONS:
        raise InputError(
            f"dataset.json declares an unknown {DATASET_JSON_KEY} {key!r}; known: {', '.join(CONVENTIONS)}"
        )
    return CONVENTIONS[key]


def convention_dataset_json(
    convention: Convention,
    num_training: int,
    name: str,
    label_based: bool = False,
    description: str = "",
    reference: str = "",
    licence: str = "",
    file_ending: str = ".nii.gz",
) -> dict:
    """nnU-Net's dataset.json for ``convention``: region-based (sigmoid regions, ``regions_class_order``)
    or, with ``label_based``, one softmax class per label (background first)."""
    if label_based or len(convention.regions) == 1:
        labels: dict = {"background": 0, **{c.short: c.value for c in convention.labels}}
    else:
        labels = {"background": 0, **{r.key: list(r.labels) for r in convention.regions}}
    out = {
        "name": name,
        "description": description,
        "reference": reference,
        "licence": licence,
        "release": "1.0",
        "channel_names": {str(i): n for i, n in enumerate(convention.layout.channel_names)},
        "labels": labels,
        "numTraining": int(num_training),
        "file_ending": file_ending,
        DATASET_JSON_KEY: convention.key,
    }
    if not (label_based or len(convention.regions) == 1):
        out["regions_class_order"] = list(convention.regions_class_order)
    return out


def _normalise(name: str) -> str:
    return name.strip().lower().replace(" ", "_").replace("-", "_")


_SHORT_BY_KEY = {r.key: r.short for c in CONVENTIONS.values() for r in c.regions}


def region_display_names(dataset_json: Mapping) -> dict[str, str]:
    """dataset.json ``labels`` key -> the short name to show (``tumor_core`` -> ``TC``).

    From the declared convention when there is one; else from the region's key (``whole tumor``,
    ``whole_tumor`` -> ``WT``), never from its label set (the same set means different regions in
    different conventions: {1,2,3} is WT in 2023 and TC in 2024 PED); unknown keys keep their name.
    """
    labels = dataset_json.get("labels") or {}
    convention = convention_of_dataset(dataset_json)
    by_key = {r.key: r.short for r in convention.regions} if convention else _SHORT_BY_KEY
    return {k: by_key.get(_normalise(k), k) for k in labels}


def detect_convention(
    layout: FileLayout, case_ids: Sequence[str], labels_by_case: Mapping[str, set[int]]
) -> Convention:
    """The convention of a release from its file layout, case ids and the label values of its label
    files (``labels_by_case``: labelled case id -> its label values).

    BraTS 2024 GLI, MET and PED files are named as in 2023, so only the labels can tell them apart, and
    they do not always: without label 4 anywhere the labels mean what they mean in 2023 (GLI, SSA, MEN,
    MET, GoAT, or ids from elsewhere: ``brats2023-gli``; sub-challenges that score lesions alike may be
    mixed, e.g. GLI and SSA), except for pediatric cases, whose 2024 numbering differs (1 is ET there,
    not NETC). Label 4 is the resection cavity in 2024 GLI and MET, edema in 2024 PED, and an error in
    2023 data, so it is never guessed. Raises :class:`InputError`, naming the choices, where the data
    do not decide.
    """
    if layout.key == "brats2021":
        return CONVENTIONS["brats2021"]
    if layout.key == "brats-men-rt":
        return CONVENTIONS["brats2024-men-rt"]
    with_4 = [case for case, values in labels_by_case.items() if 4 in values]
    prefixes = sorted({p for c in CONVENTIONS.values() for p in c.case_prefixes}, key=len, reverse=True)
    used = set()
    for case in case_ids:  # the longest prefix: BraTS-MEN-RT-... is not BraTS-MEN
        used.update(next(([p] for p in prefixes if case.startswith(p + "-")), []))
    if with_4:
        likely = {"BraTS-GLI": "brats2024-gli", "BraTS-MET": "brats2024-met", "BraTS-PED": "brats2024-ped"}
        hint = [likely[p] for p in sorted(used) if p in likely] or sorted(likely.values())
        raise InputError(
            f"label 4 is in the label files ({with_4[0]}"
            + (f" and {len(with_4) - 1} more" if len(with_4) > 1 else "")
            + "): BraTS 2024 GLI and MET use it for the resection cavity, BraTS 2024 PED for edema, and "
            f"BraTS 2023 has no label 4; pass --challenge {' or '.join(hint)} (or a brats2023 one to skip "
            "the cases that hold label 4)"
        )
    if "BraTS-PED" in used:
        raise InputError(
            "pediatric cases (BraTS-PED): BraTS 2023 PED (1 NETC, 2 ED, 3 ET) and BraTS 2024 PED (1 ET, "
            "2 NETC, 3 CC, 4 ED) number their labels differently and no label 4 tells them apart; pass "
            "--challenge brats2023-ped or brats2024-ped"
        )
    by_prefix = {
        "BraTS-GLI": "brats2023-gli",
        "BraTS-SSA": "brats2023-ssa",
        "BraTS-MEN": "brats2023-men",
        "BraTS-MET": "brats2023-met",
        "BraTS-GoAT": "brats2024-goat",
    }
    found = sorted({by_prefix.get(p, DEFAULT_CONVENTION) for p in used} or {DEFAULT_CONVENTION})
    scoring = {(CONVENTIONS[k].lesion_dilation, CONVENTIONS[k].lesion_min_volume_mm3) for k in found}
    if len(found) > 1 and len(scoring) > 1:
        raise InputError(
            f"the source mixes cases of challenges that score lesions differently ({', '.join(sorted(used))}); "
            "convert them separately or pass --challenge"
        )
    return CONVENTIONS[DEFAULT_CONVENTION if DEFAULT_CONVENTION in found else found[0]]
