"""The report's words for one label convention: sub-regions, their names, proportions and colours.

Derived from :mod:`nnunet_diffrefine.data.challenges` (the convention a dataset.json declares), so the
report names what the labels mean in that challenge. Sub-regions get a *code* that is the same for the
same tissue in every convention (``NC`` the non-enhancing / necrotic core, ``ED`` the edema or FLAIR
hyperintensity, ``ET`` enhancing tumor, ``RC`` resection cavity, ``CC`` cystic component, ``GTV`` gross
tumor volume; composite regions ``TC``, ``WT``), and the convention's own abbreviation to show
(BraTS 2024 ``NETC``, ``SNFH``). The measurements, the claim checker and the template use the codes;
what is shown uses the convention's abbreviation with the code's words.

- Sub-regions, in report order: each label (value order), then the composite regions (more than one
  label) from the smallest.
- The *tumor*: the region WT where the convention has one, else the union of all labels (MEN-RT: the
  GTV). Lesions, diameters, side and midline are measured on it; labels outside it (the resection
  cavity) get a volume only.
- Proportions: each label as a fraction of the smallest composite region that contains it (enhancing
  first, then label order): BraTS 2023 ET/TC, NC/TC, ED/WT; 2024 PED also CC/TC.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from nnunet_diffrefine.data.challenges import (
    CONVENTIONS,
    DEFAULT_CONVENTION,
    Convention,
    convention_of_dataset,
)

CODE_OF_KIND: dict[str, str] = {
    "core": "NC",
    "edema": "ED",
    "enhancing": "ET",
    "cavity": "RC",
    "cyst": "CC",
    "gtv": "GTV",
}
"""Label kind (:class:`~nnunet_diffrefine.data.challenges.LabelClass`) -> the report's code."""

_WORDS: dict[str, tuple[str, str, str]] = {
    # shown abbreviation -> (long name, name in a sentence, component phrase of the impression)
    "NC": (
        "necrotic / non-enhancing tumor core",
        "necrotic / non-enhancing core",
        "a necrotic / non-enhancing core",
    ),
    "NETC": ("non-enhancing tumor core", "non-enhancing tumor core", "a non-enhancing core"),
    "ED": ("peritumoral edema", "edema", "surrounding edema"),
    "SNFH": (
        "surrounding non-enhancing FLAIR hyperintensity",
        "FLAIR hyperintensity",
        "surrounding FLAIR hyperintensity",
    ),
    "ET": ("enhancing tumor", "enhancing tumor", "an enhancing component"),
    "RC": ("resection cavity", "resection cavity", "a resection cavity"),
    "CC": ("cystic component", "cystic component", "a cystic component"),
    "GTV": ("gross tumor volume", "gross tumor volume", "a gross tumor volume"),
    "TC": ("tumor core", "tumor core", "a tumor core"),
    "WT": ("whole tumor", "whole tumor", "a whole tumor"),
}
_IMPRESSION_ORDER = ("ET", "NC", "CC", "ED")  # the components the impression lists, in this order


@dataclass(frozen=True)
class Vocabulary:
    """A convention's report words. ``subregions``: code -> label values, in report order; ``shown``:
    code -> abbreviation shown; ``proportions``: ``"ET/TC"`` -> (numerator, base); ``tumor``: the code
    whose mask is the tumor; ``colours``: label value -> RGB 0-255 overlay colour; ``channels``: image
    names in nnU-Net channel order."""

    key: str
    title: str
    subregions: dict[str, tuple[int, ...]]
    shown: dict[str, str]
    proportions: dict[str, tuple[str, str]]
    tumor: str
    colours: dict[int, tuple[int, int, int]]
    channels: tuple[str, ...]

    @property
    def label_values(self) -> tuple[int, ...]:
        """Label values of the label files, background excluded."""
        return tuple(sorted({v for labels in self.subregions.values() for v in labels}))

    @property
    def label_codes(self) -> tuple[str, ...]:
        """The codes that are one label each, in value order."""
        return tuple(c for c, labels in self.subregions.items() if len(labels) == 1)

    def region_of(self, code: str) -> str:
        """The sub-region a code of the text stands for here: *whole tumor* (WT) is the tumor where the
        convention has no WT (MEN-RT: the GTV); any other code is itself."""
        return self.tumor if code == "WT" and code not in self.subregions else code

    def code_of_label(self, value: int) -> str:
        return next(c for c, labels in self.subregions.items() if labels == (value,))

    def long_name(self, code: str) -> str:
        """``necrotic / non-enhancing tumor core``."""
        return _WORDS[self.shown[code]][0]

    def words(self, code: str) -> str:
        """The name in a sentence, abbreviation in parentheses: ``edema (ED)``."""
        return f"{_WORDS[self.shown[code]][1]} ({self.shown[code]})"

    def legend(self, value: int) -> str:
        """The figure legend's entry of label ``value``: ``ED edema``."""
        code = self.code_of_label(value)
        return f"{self.shown[code]} {_WORDS[self.shown[code]][1]}"

    def component(self, code: str) -> str:
        """The impression's phrase: ``an enhancing component``."""
        return _WORDS[self.shown[code]][2]

    def members(self, code: str) -> str:
        """A region's labels as shown: ``NC + ET``."""
        return " + ".join(self.shown[self.code_of_label(v)] for v in self.subregions[code])

    def proportion_name(self, key: str) -> str:
        """A proportion as the convention writes it: ``NC/TC`` -> ``NETC/TC``."""
        num, den = self.proportions[key]
        return f"{self.shown[num]}/{self.shown[den]}"

    def definition(self, code: str) -> str:
        """The table's name: ``peritumoral edema (ED, label 2)``, ``tumor core (TC = NC + ET)``."""
        labels = self.subregions[code]
        if len(labels) == 1:
            return f"{self.long_name(code)} ({self.shown[code]}, label {labels[0]})"
        return f"{self.long_name(code)} ({self.shown[code]} = {self.members(code)})"

    @property
    def impression_components(self) -> tuple[str, ...]:
        inside = set(self.subregions[self.tumor])
        codes = [c for c in _IMPRESSION_ORDER if c in self.subregions and set(self.subregions[c]) <= inside]
        return tuple(c for c in codes if c != self.tumor)

    @property
    def default_base(self) -> dict[str, str]:
        """Numerator -> the base a percentage without *of ...* is read against (TC of WT too)."""
        base = {num: den for num, den in self.proportions.values()}
        if "TC" in self.subregions and "WT" in self.subregions:
            base.setdefault("TC", "WT")
        return base


def _vocabulary(convention: Convention) -> Vocabulary:
    subregions: dict[str, tuple[int, ...]] = {}
    shown: dict[str, str] = {}
    colours: dict[int, tuple[int, int, int]] = {}
    for label in convention.labels:
        code = CODE_OF_KIND[label.kind]
        subregions[code], shown[code], colours[label.value] = (label.value,), label.short, label.colour
    composite = sorted((r for r in convention.regions if len(r.labels) > 1), key=lambda r: len(r.labels))
    for region in composite:
        subregions[region.short], shown[region.short] = tuple(sorted(region.labels)), region.short
    labels = [c for c in subregions if len(subregions[c]) == 1]
    order = sorted(labels, key=lambda c: (c != "ET", labels.index(c)))
    proportions: dict[str, tuple[str, str]] = {}
    for code in order:
        base = next((r.short for r in composite if subregions[code][0] in r.labels), None)
        if base is not None:
            proportions[f"{code}/{base}"] = (code, base)
    tumor = "WT" if "WT" in subregions else (composite[-1].short if composite else labels[0])
    if len(labels) > 1 and not composite:
        raise ValueError(f"{convention.key}: several labels and no region holding them")
    return Vocabulary(
        convention.key,
        convention.title,
        subregions,
        shown,
        proportions,
        tumor,
        colours,
        tuple(convention.layout.channel_names),
    )


@cache
def vocabulary(key: str = DEFAULT_CONVENTION) -> Vocabulary:
    """The vocabulary of the convention named ``key`` (:data:`~nnunet_diffrefine.data.challenges.CONVENTIONS`)."""
    return _vocabulary(CONVENTIONS[key])


def vocabulary_of_dataset(dataset_json: Mapping | None) -> Vocabulary:
    """The vocabulary of the convention a dataset.json declares (BraTS 2023 when it declares none)."""
    convention = None if dataset_json is None else convention_of_dataset(dataset_json)
    return vocabulary(convention.key if convention is not None else DEFAULT_CONVENTION)


def vocabulary_of(measurements: Mapping[str, Any]) -> Vocabulary:
    """The vocabulary measurements were taken with (``convention`` in measurements.json)."""
    return vocabulary(measurements.get("convention", DEFAULT_CONVENTION))
