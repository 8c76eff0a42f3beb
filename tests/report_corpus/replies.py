"""Reply templates: correct replies in radiology style and wrong ones, filled from a measurement set.

A template is a reply (findings and impression) whose numbers are format fields of :func:`values`
(``{wt:.1f}``, ``{long_cm:.1f}``, ``{wt10:.0f}``), with the tags it needs (:func:`tags`: the number of
lesions, midline crossing, which sub-regions are present, the label convention), so that it is
applied only to the sets it is correct for. Correct replies round as people do (``{wt:.0f} mL``,
*about* the nearest 5 or 10, mm or cm, mm³ with a thousands separator) and use the words of
radiology reports (RANO bi- and tridimensional sizes, *non-enhancing, ring-enhancing, necrotic
centre, FLAIR hyperintensity*, lobes with a side, negations). Lobes cannot be checked (nothing
measures them): they are unverifiable, whichever lobe is named. Wrong replies are in :mod:`.wrong`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nnunet_diffrefine.report.vocabulary import vocabulary_of

SMALL = "zero one two three four five six seven eight nine ten".split()
_TENS = "ten twenty thirty forty fifty sixty seventy eighty ninety".split()


def in_words(value: int) -> str:
    """``150`` -> ``one hundred and fifty`` (0-999, multiples of ten above ten)."""
    hundreds, rest = divmod(value, 100)
    tens = "" if rest == 0 else SMALL[rest] if rest <= 10 else _TENS[rest // 10 - 1]
    if hundreds == 0:
        return tens or "zero"
    return f"{SMALL[hundreds]} hundred" + (f" and {tens}" if tens else "")


def tags(m: dict[str, Any]) -> set[str]:
    """What a measurement set is: its convention, ``single``/``multi``, ``crosses``/``uncrossed``,
    ``et+``/``et0`` (and ``nc ed cc rc``), ``et-big`` (ET >= 1 cm³), ``l2`` (a second lesion >= 0.5 cm³),
    ``snfh``/``netc`` (its abbreviations), ``wt<100``."""
    words, v = vocabulary_of(m), m["volumes_cm3"]
    lesions = m["lesions"]["volumes_cm3"]
    found = {m["convention"], "single" if len(lesions) == 1 else "multi"}
    found.add("crosses" if m["crosses_midline"] else "uncrossed")
    for code in ("ET", "NC", "ED", "CC", "RC", "TC"):
        if code in v:
            found.add(code.lower() + ("+" if v[code] >= 0.005 else "0"))
    if v.get("ET", 0) >= 1.0:
        found.add("et-big")
    if len(lesions) > 1 and lesions[1] >= 0.5:
        found.add("l2")
    found |= {words.shown[c].lower() for c in words.subregions if words.shown[c] in ("SNFH", "NETC")}
    if v[words.tumor] < 100:
        found.add("wt<100")
    return found


def values(m: dict[str, Any], craniocaudal_mm: float) -> dict[str, Any]:
    """The format fields of the templates."""
    words, v = vocabulary_of(m), m["volumes_cm3"]
    axial = m["largest_slices"]["axial"]
    wt = v[words.tumor]
    lesions = m["lesions"]["volumes_cm3"]
    side = m["side"]
    out: dict[str, Any] = {
        "wt": wt,
        "wt_mm3": 1000 * wt,
        "wt5": 5 * round(wt / 5),
        "wt10": 10 * round(wt / 10),
        "wt_words": in_words(int(10 * round(wt / 10))),
        "long": axial["long_diameter_mm"],
        "perp": axial["perpendicular_diameter_mm"],
        "long_cm": axial["long_diameter_mm"] / 10,
        "perp_cm": axial["perpendicular_diameter_mm"] / 10,
        "cc_mm": craniocaudal_mm,
        "cc_cm": craniocaudal_mm / 10,
        "product_cm2": axial["long_diameter_mm"] * axial["perpendicular_diameter_mm"] / 100,
        "slice": axial["file_index"],
        "area": axial["area_mm2"],
        "dist": m["centroid_offset_from_midline_mm"],
        "dist_cm": m["centroid_offset_from_midline_mm"] / 10,
        "side": side,
        "Side": side.capitalize(),
        "other": {"left": "right", "right": "left"}.get(side, "left"),
        "Other": {"left": "Right", "right": "Left"}.get(side, "Left"),
        "count": len(lesions),
        "Count_word": SMALL[len(lesions)].capitalize() if len(lesions) <= 10 else str(len(lesions)),
        "others_word": SMALL[len(lesions) - 1] if len(lesions) <= 11 else str(len(lesions) - 1),
        "l1": lesions[0],
        "l2": lesions[1] if len(lesions) > 1 else 0.0,
    }
    for code in ("ET", "NC", "ED", "TC", "CC", "RC"):
        if code in v:
            out[code.lower()] = v[code]
    if v.get("TC", 0) > 0:
        out |= {"et_tc": 100 * v["ET"] / v["TC"], "nc_tc": 100 * v["NC"] / v["TC"]}
        out["et_tc_frac"] = v["ET"] / v["TC"]
    if "ED" in v and wt > 0:
        out["ed_wt"] = 100 * v["ED"] / wt
        out["ed_wt10"] = 10 * round(out["ed_wt"] / 10)
    return out


@dataclass(frozen=True)
class Reply:
    """A reply template: a name, the tags it needs (space-separated), findings and impression."""

    name: str
    needs: str
    findings: str
    impression: str = ""

    def applies(self, found: set[str]) -> bool:
        return set(self.needs.split()) <= found

    def sections(self, fields: dict[str, Any]) -> dict[str, str]:
        out = {"findings": self.findings.format(**fields)}
        if self.impression:
            out["impression"] = self.impression.format(**fields)
        return out


CORRECT: tuple[Reply, ...] = (
    # the two rejected replies, on every set they are true of
    Reply(
        "issue: diameter pair in a sentence naming the midline",
        "single uncrossed",
        "Single lesion in the {side} hemisphere, not crossing the midline, {long_cm:.1f} x {perp_cm:.1f} cm "
        "on the largest axial slice.",
    ),
    Reply(
        "issue: non-enhancing tumour volume", "et0", "{Side}-hemispheric non-enhancing tumor, {wt:.1f} cm³."
    ),
    Reply("issue: non-enhancing lesion, about", "et0", "{Side} non-enhancing lesion of about {wt:.0f} mL."),
    # RANO-style sizes
    Reply(
        "RANO bidimensional with product",
        "et+",
        "Bidimensional measurement (RANO) on axial slice {slice}: {long:.0f} mm x {perp:.0f} mm "
        "(product {product_cm2:.1f} cm²).",
    ),
    Reply(
        "tridimensional AP x TR x CC",
        "",
        "The lesion measures {long_cm:.1f} x {perp_cm:.1f} x {cc_cm:.1f} cm (AP x TR x CC).",
    ),
    Reply(
        "tridimensional in mm, midline named",
        "uncrossed",
        "Intra-axial mass of the {side} hemisphere, {long:.0f} x {perp:.0f} x {cc_mm:.0f} mm, sparing the midline.",
    ),
    Reply(
        "longest and perpendicular, separate",
        "",
        "Largest axial diameter {long:.1f} mm, with a perpendicular diameter of {perp:.1f} mm.",
    ),
    Reply(
        "maximal axial dimension in cm", "", "The lesion spans {long_cm:.1f} cm in maximal axial dimension."
    ),
    Reply("measuring up to", "", "The mass measures up to {long_cm:.1f} cm in greatest axial diameter."),
    Reply(
        "FLAIR-hyperintense lesion with a pair",
        "",
        "T2/FLAIR hyperintense lesion measuring {long:.0f} x {perp:.0f} mm on the axial slice of largest extent.",
    ),
    # volumes in mL, cm³, mm³, rounded and approximate
    Reply(
        "volumes in mL with oedema and core",
        "ed+ tc+",
        "Whole tumour volume {wt:.1f} mL, of which peritumoural oedema {ed:.1f} mL and tumour core {tc:.1f} mL.",
    ),
    Reply("total in mm³", "", "Total lesion volume {wt_mm3:,.0f} mm³."),
    Reply("whole tumour, nearest 5, tilde", "", "Estimated whole-tumour volume ~{wt5:.0f} mL."),
    Reply(
        "approximately, nearest 10", "", "In total, the abnormality measures approximately {wt10:.0f} cm³."
    ),
    Reply("about, in words", "", "The whole tumor measures about {wt_words} cubic centimetres."),
    Reply("whole integer mL", "", "The segmented tumour occupies {wt:.0f} mL."),
    Reply("lesion cc", "", "Lesion volume: {wt:.1f} cc."),
    Reply(
        "abbreviated list, cm³",
        "brats2023-gli et+",
        "Enhancing tumor (ET) {et:.2f} cm³, necrosis (NC) {nc:.2f} cm³, edema (ED) {ed:.2f} cm³, whole tumor "
        "(WT) {wt:.2f} cm³.",
    ),
    Reply(
        "core split in a parenthesis",
        "et+ nc+",
        "Tumor core {tc:.1f} cm³ (necrotic core {nc:.1f} cm³ + enhancing {et:.1f} cm³).",
    ),
    Reply(
        "oedema in a parenthesis",
        "ed+",
        "There is perilesional vasogenic oedema ({ed:.0f} mL) without restricted diffusion.",
    ),
    Reply("surrounding FLAIR hyperintensity", "ed+", "Surrounding FLAIR hyperintensity of {ed:.1f} mL."),
    Reply("non-enhancing core", "nc+", "The necrotic / non-enhancing tumour core measures {nc:.1f} mL."),
    Reply("enhancing component", "et-big", "The enhancing component measures {et:.1f} mL."),
    # proportions
    Reply(
        "enhancing fraction of the core",
        "et+ tc+",
        "Enhancing tumour constitutes {et_tc:.0f}% of the tumour core.",
    ),
    Reply(
        "oedema fraction of the whole", "ed+", "Oedema accounts for {ed_wt:.0f} % of the whole tumour volume."
    ),
    Reply("ratio", "et+ tc+", "The ET/TC ratio is {et_tc_frac:.2f}."),
    # descriptors
    Reply(
        "heterogeneously enhancing mass, necrotic centre",
        "et+ nc+ ed+",
        "There is a heterogeneously enhancing intra-axial mass in the {side} cerebral hemisphere measuring "
        "{long_cm:.1f} x {perp_cm:.1f} cm, with a necrotic centre and surrounding FLAIR hyperintensity.",
    ),
    Reply(
        "ring-enhancing lesion with central necrosis",
        "et-big nc+",
        "Ring-enhancing lesion with central necrosis in the {side} hemisphere; enhancing tumor volume {et:.1f} "
        "mL, necrotic core {nc:.1f} mL.",
        "{Side}-sided ring-enhancing mass with surrounding oedema.",
    ),
    Reply(
        "enhancing mass of the whole volume",
        "et+",
        "Enhancing mass in the {side} hemisphere with a total volume of {wt:.0f} mL.",
    ),
    Reply(
        "FLAIR hyperintense, non-enhancing, without enhancement",
        "et0 single",
        "FLAIR-hyperintense, non-enhancing lesion in the {side} hemisphere, without enhancement after "
        "contrast, {long_cm:.1f} x {perp_cm:.1f} cm.",
        "Non-enhancing {side} hemispheric lesion of about {wt:.0f} mL, consistent with a low-grade glioma.",
    ),
    Reply(
        "predominantly non-enhancing",
        "et+ nc+",
        "Predominantly non-enhancing infiltrative mass with a small enhancing focus.",
    ),
    # side, lobes, midline
    Reply(
        "side and lobe, distance in mm",
        "uncrossed",
        "{Side} frontotemporal lesion centred {dist:.0f} mm lateral to the midline.",
        "{Side} hemispheric tumour without midline shift.",
    ),
    Reply("distance in cm", "", "The tumour centroid lies {dist_cm:.1f} cm from the midline."),
    Reply("side of the midline", "", "The lesion is centred {dist:.1f} mm to the {side} of the midline."),
    Reply(
        "confined, no contralateral extension",
        "uncrossed",
        "The tumour is confined to the {side} hemisphere. No contralateral extension.",
    ),
    Reply("does not cross", "uncrossed", "It does not cross the midline and there is no midline shift."),
    Reply(
        "crosses via the corpus callosum",
        "crosses",
        "Predominantly {side}-sided mass extending across the midline into the {other} hemisphere via the "
        "corpus callosum.",
    ),
    Reply("both hemispheres", "crosses", "The FLAIR abnormality involves both hemispheres."),
    # number of lesions
    Reply("unifocal, no satellites", "single", "Unifocal lesion. There is no satellite lesion."),
    Reply("no additional lesions", "single", "No additional lesions are identified."),
    Reply(
        "count with the largest",
        "multi",
        "{Count_word} lesions are segmented (26-connected components); the largest measures {l1:.1f} mL.",
    ),
    Reply(
        "dominant lesion with satellites",
        "l2",
        "A dominant {l1:.0f} mL lesion with {others_word} smaller satellite foci, the largest of them "
        "{l2:.1f} mL.",
        "Multifocal {side}-hemispheric tumour.",
    ),
    # convention words
    Reply(
        "2024 GLI abbreviations",
        "brats2024-gli",
        "NETC {nc:.2f} cm³, SNFH {ed:.2f} cm³, ET {et:.2f} cm³. There is no resection cavity.",
    ),
    Reply(
        "2024 GLI names",
        "brats2024-gli",
        "The non-enhancing tumor core (NETC) measures {nc:.1f} mL and the surrounding FLAIR hyperintensity "
        "(SNFH) {ed:.1f} mL.",
    ),
    Reply(
        "PED sub-regions, no cyst",
        "brats2024-ped",
        "Enhancing tumor {et:.1f} mL, non-enhancing tumor core {nc:.1f} mL and peritumoral edema {ed:.1f} mL; "
        "no cystic component.",
        "Large {side}-hemispheric, minimally enhancing tumour crossing the midline.",
    ),
    Reply("MEN-RT GTV", "brats2024-men-rt", "Gross tumor volume (GTV) {wt:.1f} cm³."),
    Reply(
        "MEN-RT GTV size",
        "brats2024-men-rt",
        "The GTV measures {long_cm:.1f} x {perp_cm:.1f} cm on the largest axial slice, {dist:.0f} mm from the "
        "midline.",
    ),
    # formats seen in model replies
    Reply(
        "asides after each number",
        "",
        "The tumour measures {long:.1f} mm (longest) by {perp:.1f} mm (perpendicular).",
    ),
    Reply("glued pair", "", "{long:.0f}x{perp:.0f} mm lesion on the axial slice of largest extent."),
    Reply(
        "long and short axis",
        "",
        "It measures {long_cm:.1f} cm in long axis and {perp_cm:.1f} cm in short axis.",
    ),
    Reply("craniocaudal extent", "", "The lesion extends {cc_cm:.1f} cm craniocaudally."),
    Reply(
        "volumes with the sub-region after them",
        "tc+ brats2023-gli",
        "Tumor volume: {wt:.1f} mL (WT), {tc:.1f} mL (TC), {et:.1f} mL (ET).",
    ),
    Reply(
        "colon list with abbreviations",
        "tc+ ed+",
        "Edema (ED): {ed:.2f} cm³; NC: {nc:.2f} cm³; ET: {et:.2f} cm³; TC: {tc:.2f} cm³.",
    ),
    Reply("volume of a sub-region given as zero", "et0", "Volume of enhancing tumour: 0 mL."),
    Reply(
        "adjective list before the lesion",
        "et0",
        "Low-grade appearing, non-enhancing, T2/FLAIR hyperintense {side} hemispheric mass measuring "
        "{long_cm:.1f} x {perp_cm:.1f} cm in axial plane, volume ~{wt5:.0f} mL.",
    ),
    Reply(
        "edema share in a parenthesis",
        "ed+ brats2023-gli",
        "ED {ed:.1f} mL ({ed_wt:.0f}% of WT).",
    ),
    Reply("approximate share", "ed+", "Approximately {ed_wt10:.0f}% of the whole tumour is oedema."),
    Reply(
        "distance after a midline relation",
        "uncrossed",
        "The lesion does not reach the midline ({dist:.1f} mm away).",
    ),
    Reply("side of midline, short", "", "Situated {dist:.0f} mm {side} of midline."),
    Reply(
        "one dominant lesion and additional foci",
        "l2",
        "There is one dominant lesion and {others_word} tiny additional foci.",
    ),
    Reply("bilateral, greater than", "crosses", "Bilateral tumour, {side} greater than {other}."),
    Reply(
        "model-style findings",
        "single uncrossed tc+ ed+ brats2023-gli",
        "A single lesion is identified in the {side} cerebral hemisphere, with its centroid located {dist:.1f} "
        "mm from the midline; the lesion does not cross the midline. The whole tumor (WT) volume is {wt:.2f} "
        "cm³, comprising peritumoral edema (ED) of {ed:.2f} cm³ and a necrotic / non-enhancing tumor core (NC) "
        "of {nc:.2f} cm³. The tumor core (TC) measures {tc:.2f} cm³. Edema makes up {ed_wt:.1f}% of the whole "
        "tumor. On axial slice {slice}, the largest cross-section has an area of {area:.1f} mm² with a longest "
        "diameter of {long:.1f} mm and a perpendicular diameter of {perp:.1f} mm.",
    ),
    # whole replies, findings and impression
    Reply(
        "full reply, high-grade pattern",
        "et+ nc+ ed+ single",
        "Solitary heterogeneously enhancing mass in the {side} cerebral hemisphere, {long:.0f} x {perp:.0f} mm "
        "on axial slice {slice}. Enhancing tumour {et:.1f} mL, necrosis {nc:.1f} mL, FLAIR hyperintensity "
        "surrounding the lesion {ed:.1f} mL. Mass effect with effacement of the adjacent sulci.",
        "Solitary {side}-sided enhancing tumour, about {wt10:.0f} mL in total.",
    ),
    Reply(
        "full reply, impression with diagnosis",
        "et+ single",
        "The whole tumour measures {wt:.1f} cm³ and lies {dist:.0f} mm from the midline.",
        "{Side} hemispheric ring-enhancing lesion, consistent with glioblastoma.",
    ),
)
