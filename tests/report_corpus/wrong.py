"""Wrong replies: one wrong statement each, of a kind, filled from a measurement set like
:mod:`.replies`; each names a quantity its contradiction must be listed under."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from report_corpus.replies import SMALL, in_words, values


@dataclass(frozen=True)
class Wrong:
    """A wrong reply: its kind, the tags it needs, the findings, and the quantity of the contradiction
    that must be listed (a part of its name)."""

    kind: str
    needs: str
    findings: str
    quantity: str


WRONG: tuple[Wrong, ...] = (
    # the kinds the issue tried
    Wrong("wrong rounding", "", "Whole tumour volume {wt_bad:.1f} mL.", "volume"),
    Wrong("no edema", "ed+", "There is no peritumoral edema.", "presence of ED"),
    Wrong("wrong side by lobe name", "uncrossed", "{Other} frontal lobe tumour.", "side"),
    Wrong("invented enhancing rim", "et0", "There is a thin enhancing rim.", "presence of ET"),
    Wrong("two lesions", "single", "There are two separate lesions.", "number of lesions"),
    Wrong(
        "diameter as the midline distance", "", "The lesion lies {long:.1f} mm from the midline.", "midline"
    ),
    Wrong(
        "number in words", "", "The whole tumor measures about {wt_words_bad} cubic centimetres.", "volume"
    ),
    # diameters given as distances and distances as diameters
    Wrong(
        "diameter as the midline distance, cm", "", "Centred {long_cm:.1f} cm from the midline.", "midline"
    ),
    Wrong("midline distance as a diameter pair", "", "It measures {dist:.1f} x {perp:.1f} mm.", "diameter"),
    Wrong(
        "midline distance as the longest diameter", "", "Greatest axial diameter {dist:.0f} mm.", "longest"
    ),
    Wrong(
        "repeated diameter in a pair", "", "The lesion measures {long_cm:.1f} x {long_cm:.1f} cm.", "diameter"
    ),
    Wrong(
        "tridimensional size without the axial diameters",
        "",
        "The lesion measures {dist_cm:.1f} x {perp_cm:.1f} x {cc_cm:.1f} cm.",
        "diameter",
    ),
    # lobes on the wrong side
    Wrong("lobe on the wrong side", "uncrossed", "Lesion in the {other} temporal lobe.", "side"),
    Wrong("hyphenated lobe on the wrong side", "uncrossed", "{Other}-sided frontoparietal mass.", "side"),
    # descriptors on wrong numbers
    Wrong(
        "non-enhancing tumour given the NC volume",
        "nc+",
        "{Side}-hemispheric non-enhancing tumor, {nc:.1f} cm³.",
        "lesion volume",
    ),
    Wrong(
        "non-enhancing lesion given the ED volume",
        "ed+",
        "{Side} non-enhancing lesion of {ed:.1f} mL.",
        "lesion volume",
    ),
    Wrong("enhancing mass given the ED volume", "ed+", "Enhancing mass of {ed:.1f} mL.", "lesion volume"),
    Wrong(
        "non-enhancing for an enhancing tumour",
        "et-big",
        "{Side}-hemispheric non-enhancing mass.",
        "presence of ET",
    ),
    Wrong(
        "ring-enhancing without enhancement",
        "et0",
        "Ring-enhancing lesion in the {side} hemisphere.",
        "presence of ET",
    ),
    # approximations beyond their stated rounding
    Wrong("about, beyond its rounding", "", "Whole tumour volume about {wt_far:.0f} mL.", "volume"),
    Wrong(
        "approximate pair beyond its rounding",
        "",
        "Approximately {long_far:.0f} x {perp:.0f} mm.",
        "diameter",
    ),
    # formats seen in model replies
    Wrong("glued pair with a repeated diameter", "", "{long_cm:.1f}x{long_cm:.1f} cm lesion.", "diameter"),
    Wrong(
        "asides swapped",
        "",
        "The tumour measures {perp:.1f} mm (longest) by {long:.1f} mm (perpendicular).",
        "diameter",
    ),
    Wrong("colon list with a wrong volume", "ed+ nc+", "NC: {ed:.2f} cm³; ED: {nc:.2f} cm³.", "volume"),
    Wrong("sub-region after its number", "tc+ brats2023-gli", "Tumor volume: {tc:.1f} mL (WT).", "WT volume"),
    Wrong(
        "share beyond its rounding",
        "ed+",
        "Approximately {ed_wt_far:.0f}% of the whole tumour is oedema.",
        "proportion",
    ),
    # other kinds
    Wrong(
        "satellites miscounted",
        "l2",
        "A dominant lesion with {others_plus} satellite foci.",
        "number of lesions",
    ),
    Wrong("invented crossing", "uncrossed", "The tumour crosses the midline.", "midline crossing"),
    Wrong(
        "crossing denied", "crosses", "The tumour is confined to the {side} hemisphere.", "midline crossing"
    ),
    Wrong("necrosis denied", "nc+", "No necrosis.", "presence of NC"),
    Wrong(
        "FLAIR hyperintensity given the core volume",
        "ed+ tc+",
        "FLAIR hyperintensity of {tc:.1f} mL.",
        "volume",
    ),
)


def wrong_values(m: dict[str, Any], craniocaudal_mm: float) -> dict[str, Any]:
    """:func:`values` and the wrong numbers of :data:`WRONG`."""
    out = values(m, craniocaudal_mm)
    out["wt_bad"] = round(out["wt"], 1) - 0.2
    out["wt_words_bad"] = in_words(_not_hundreds(out["wt10"] + 30))
    out["wt_far"] = _not_hundreds(out["wt10"] + (10 if out["wt"] < 100 else 30))
    long_far = round(out["long"]) + 12
    out["long_far"] = long_far + 1 if long_far % 5 == 0 else long_far
    out["others_plus"] = SMALL[min(out["count"], 10)]
    if "ed_wt" in out:
        out["ed_wt_far"] = _not_hundreds(out["ed_wt10"] + 20)
    return out


def _not_hundreds(value: int) -> int:
    """``value``, or 10 more where it is a multiple of 100 (*about 200* would mean 150-250)."""
    return value + 10 if value % 100 == 0 else value
