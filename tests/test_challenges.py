"""Per-challenge label conventions: the table, and 2024-style datasets through every stage.

The end-to-end test runs a BraTS 2024 pediatric-style, a 2024 post-treatment glioma-style and a MEN-RT
(one T1c channel, one GTV label) dataset
(synth in the release layout -> convert --challenge -> nnU-Net planning -> MedNeXtCorrDiffTrainer ->
nnUNetv2_predict -> refine -> evaluate, ours and nnU-Net's -> report) and checks the regions and their
names. The report's words for each convention are checked on built cases.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import isolated_nnunet_env, nnunet_commands

from nnunet_diffrefine.cli.main import main
from nnunet_diffrefine.data.challenges import (
    CONVENTIONS,
    convention_dataset_json,
    region_display_names,
)
from nnunet_diffrefine.data.synth import written_labels
from nnunet_diffrefine.errors import InputError
from nnunet_diffrefine.evaluation.folder import dataset_lesion_params, dataset_regions
from nnunet_diffrefine.report.vocabulary import vocabulary


@pytest.mark.parametrize("key", sorted(CONVENTIONS))
def test_nnunet_paints_every_label_of_every_convention_back(key):
    """nnU-Net's own LabelManager turns perfect region predictions into exactly the label map."""
    from nnunetv2.utilities.label_handling.label_handling import LabelManager

    convention = CONVENTIONS[key]
    dataset = convention_dataset_json(convention, 1, "X")
    manager = LabelManager(dataset["labels"], dataset.get("regions_class_order"))
    labels = np.array(convention.values, dtype=np.uint8).reshape(-1, 1, 1)
    if manager.has_regions:
        probabilities = np.stack([np.isin(labels, r).astype(np.float32) for r in manager.foreground_regions])
    else:
        probabilities = np.stack([(labels == v).astype(np.float32) for v in manager.all_labels])
    np.testing.assert_array_equal(manager.convert_probabilities_to_segmentation(probabilities), labels)
    assert sorted(manager.all_labels) == list(convention.values)


def test_region_names_come_from_the_convention_not_the_label_set():
    ped = convention_dataset_json(CONVENTIONS["brats2024-ped"], 1, "X")
    regions, names, _ = dataset_regions(ped)
    assert names == {(1, 2, 3, 4): "WT", (1, 2, 3): "TC", (3,): "CC", (1,): "ET"}
    gli = convention_dataset_json(CONVENTIONS["brats2024-gli"], 1, "X")
    assert dataset_regions(gli)[1] == {(1, 2, 3): "WT", (1, 3): "TC", (3,): "ET", (4,): "RC"}
    nnunet_style = {"labels": {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "x": [3]}}
    assert region_display_names(nnunet_style) == {
        "background": "background",
        "whole tumor": "WT",
        "tumor core": "TC",
        "x": "x",
    }
    with pytest.raises(InputError, match="unknown brats_convention 'brats2099'"):
        region_display_names({"labels": {}, "brats_convention": "brats2099"})


def test_lesion_wise_parameters_follow_the_sub_challenge():
    def params(key):
        p = dataset_lesion_params(convention_dataset_json(CONVENTIONS[key], 1, "X"))
        return p.dilation, p.min_volume_mm3

    assert params("brats2023-gli") == params("brats2023-ped") == (3, 50.0)
    assert params("brats2023-men") == (1, 50.0)
    assert params("brats2023-met") == params("brats2024-met") == (1, 2.0)
    assert dataset_lesion_params({"labels": {}}).dilation == 3  # no convention: the GLI ones


def test_phantom_classes_are_written_in_each_convention():
    # generator classes: 0 background, 1 core, 2 edema, 3 enhancing, 4 fluid
    assert written_labels(CONVENTIONS["brats2023-gli"]).tolist() == [0, 1, 2, 3, 1]
    assert written_labels(CONVENTIONS["brats2024-gli"]).tolist() == [0, 1, 2, 3, 4]  # fluid: RC
    assert written_labels(CONVENTIONS["brats2024-ped"]).tolist() == [0, 2, 4, 1, 3]  # fluid: CC
    assert written_labels(CONVENTIONS["brats2024-men-rt"]).tolist() == [0, 1, 1, 1, 1]  # GTV


def _labelled_case(convention: str, values: tuple[int, ...]):
    """A case of ``convention`` with one box per label value in ``values``, 1 x 1 x 2 mm voxels."""
    from nnunet_diffrefine.report.inputs import CaseInputs

    seg = np.zeros((16, 40, 40), np.int16)
    for i, v in enumerate(values):  # nested boxes, outermost first: every label a visible shell
        seg[2 + i : 14 - i, 4 + 3 * i : 30 - 3 * i, 6 + 3 * i : 28 - 3 * i] = v
    grid = sitk.Image([1, 1, 1], sitk.sitkUInt8)
    grid.SetSpacing((1.0, 1.0, 2.0))
    return CaseInputs("BraTS-X-00001-000", seg, grid, {}, convention=convention)


REPORT_CASES = {  # convention -> (labels painted outermost first, words the template must use)
    "brats2023-gli": ((2, 1, 3), ["necrotic / non-enhancing core (NC)", "ET/TC", "ED/WT"]),
    "brats2024-gli": (
        (4, 2, 1, 3),
        [
            "non-enhancing tumor core (NETC)",
            "FLAIR hyperintensity (SNFH)",
            "resection cavity (RC)",
            "NETC/TC",
        ],
    ),
    "brats2024-ped": ((4, 3, 2, 1), ["cystic component (CC)", "non-enhancing tumor core (NETC)", "CC/TC"]),
    "brats2024-men-rt": ((1,), ["Gross tumor volume (GTV)", "BraTS 2024 meningioma radiotherapy"]),
}


@pytest.mark.parametrize("convention", sorted(REPORT_CASES))
def test_the_report_measures_and_names_each_conventions_regions(convention):
    from nnunet_diffrefine.report.facts import measurement_rows, report_facts
    from nnunet_diffrefine.report.guard import check_sections
    from nnunet_diffrefine.report.measurements import measure
    from nnunet_diffrefine.report.offline import offline_sections
    from nnunet_diffrefine.report.vocabulary import vocabulary

    values, must_say = REPORT_CASES[convention]
    case = _labelled_case(convention, values)
    m = measure(case)
    words = vocabulary(convention)
    voxel_cm3 = 2.0 / 1000.0
    for code, labels in words.subregions.items():  # brute force: count the voxels of each sub-region
        assert m["volumes_cm3"][code] == pytest.approx(np.isin(case.segmentation, labels).sum() * voxel_cm3)
    c = CONVENTIONS[convention]
    for region in c.regions:  # every region of the dataset.json is measured, by its own labels
        code = region.short if len(region.labels) > 1 else words.code_of_label(region.labels[0])
        assert words.subregions[code] == tuple(sorted(region.labels))
    tumor = np.isin(case.segmentation, words.subregions[words.tumor])
    assert m["lesions"]["volumes_cm3"] == [pytest.approx(tumor.sum() * voxel_cm3)]  # RC is not tumor
    for key, (num, den) in words.proportions.items():
        assert m["proportions"][key] == pytest.approx(m["volumes_cm3"][num] / m["volumes_cm3"][den], abs=1e-4)
        assert set(words.subregions[num]) < set(words.subregions[den])

    sections = offline_sections(m)
    text = "\n".join(sections.values())
    for phrase in must_say:
        assert phrase in text, (phrase, text)
    assert check_sections(sections, m) == []  # every number and claim of the template checks out
    facts = report_facts(m)
    assert set(facts["volumes_cm3"]) == {words.shown[code] for code in words.subregions}
    assert facts["label_convention"] == c.title
    rows = " ".join(q for q, _, _ in measurement_rows(m))
    for label in c.labels:
        assert f"{label.short}, label {label.value})" in rows


def test_the_report_checks_claims_in_the_conventions_words():
    from nnunet_diffrefine.report.guard import check_sections, contradictions
    from nnunet_diffrefine.report.measurements import measure

    m24 = measure(_labelled_case("brats2024-gli", (4, 2, 1, 3)))
    rc, netc = m24["volumes_cm3"]["RC"], m24["volumes_cm3"]["NC"]
    right = {"findings": f"Resection cavity (RC) {rc:.2f} cm³; NETC {netc:.2f} cm³."}
    assert check_sections(right, m24) == []
    wrong = {"findings": f"Resection cavity (RC) {rc + 1:.2f} cm³. There is no SNFH."}
    assert [f.quantity for f in contradictions(check_sections(wrong, m24))] == ["RC volume", "presence of ED"]
    m23 = measure(_labelled_case("brats2023-gli", (2, 1, 3)))
    flags = check_sections({"findings": "A resection cavity (RC) of 2.00 cm³ is seen."}, m23)
    assert flags and not contradictions(flags)  # BraTS 2023 has no RC label: cannot be verified
    assert "has no label for RC" in flags[0].reason


def test_report_inputs_follow_the_convention(tmp_path):
    from nnunet_diffrefine.report.inputs import load_case, report_convention

    seg = tmp_path / "BraTS-PED-00001-000.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.arange(5, dtype=np.int16).reshape(1, 1, 5).repeat(4, 0)), seg)
    assert report_convention(None) == report_convention({"labels": {}}) == "brats2023-gli"
    ped = report_convention(convention_dataset_json(CONVENTIONS["brats2024-ped"], 1, "X"))
    assert load_case(seg, convention=ped).convention == "brats2024-ped"
    with pytest.raises(InputError, match=r"unknown label values \[4\].*BraTS 2024 GLI/MET use 4"):
        load_case(seg)  # no dataset.json: BraTS 2023 labels, and label 4 is not one of them
    with pytest.raises(
        InputError, match=r"give the 1 image\(s\) in nnU-Net channel order \(T1c: CASE_0000\)"
    ):
        load_case(seg, images=[seg, seg], convention="brats2024-men-rt")


# challenge -> (phenotype, dataset id, region names, the labels the files hold, key of TC or GTV): the two
# shapes a dataset takes through nnU-Net (four overlapping regions, sigmoids; one label, softmax). The
# other conventions' regions, names and labels are checked above without training (BraTS 2024 PED, whose
# ET is label 1, by the region-name, label-painting and report tests).
CASES = {
    "brats2024-gli": ("adult", 984, {"WT", "TC", "ET", "RC"}, {0, 1, 2, 3, 4}, str((1, 3))),
    "brats2024-men-rt": ("adult", 986, {"GTV"}, {0, 1}, "1"),  # one T1c channel, one label
}
TRAINER, PLANS = "MedNeXtCorrDiffTrainer", "nnUNetPlansMedNeXtCPU"


@pytest.mark.slow
@pytest.mark.parametrize("challenge", sorted(CASES))
def test_a_2024_dataset_goes_through_every_stage_with_its_own_regions(
    challenge, tmp_path, monkeypatch, capsys
):
    phenotype, dataset_id, names, values, key_region = CASES[challenge]
    convention = CONVENTIONS[challenge]
    layout = convention.layout
    name = challenge.replace("-", "_")
    env = isolated_nnunet_env(
        tmp_path,
        DIFFREFINE_NUM_EPOCHS="1",
        DIFFREFINE_ITERS_PER_EPOCH="2",
        DIFFREFINE_VAL_ITERS_PER_EPOCH="1",
        DIFFREFINE_REFINER_PRESET="tiny",
    )
    for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_extTrainer"):
        monkeypatch.setenv(key, env[key])
    release = tmp_path / "release"
    synth = ["synth", "-d", "7", "-n", "Release", "--num-train", "5", "--num-test", "1", "--shape", "32"]
    synth += ["--seed", "3", "--phenotype", phenotype, "--challenge", challenge, "--fluid-prob", "1"]
    assert main([*synth, "-o", str(tmp_path / "synth_raw"), "--brats-layout", str(release)]) == 0
    convert = ["convert", "-i", str(release), "-d", str(dataset_id), "-n", name]
    if challenge == "brats2024-men-rt":  # its file names say which challenge it is
        assert main(convert) == 0
    else:
        assert main(convert) == 1
        assert "label 4 is in the label files" in capsys.readouterr().err  # never guessed
        assert main([*convert, "--challenge", challenge]) == 0
    raw = Path(env["nnUNet_raw"]) / f"Dataset{dataset_id}_{name}"
    dataset_json = json.loads((raw / "dataset.json").read_text())
    assert dataset_json["brats_convention"] == challenge
    found = set()
    for f in (raw / "labelsTr").glob("*.nii.gz"):
        found |= set(np.unique(sitk.GetArrayFromImage(sitk.ReadImage(str(f)))).tolist())
    assert found == values  # the fluid class (CC / RC) is there too

    nnunet = nnunet_commands(env)
    nnunet.plan_and_preprocess(dataset_id)
    assert main(["plans", "-d", str(dataset_id), "--arch", "mednext", "--cpu"]) == 0
    nnunet.train(dataset_id, 0, TRAINER, PLANS, resume=False)
    images = tmp_path / "imagesTs"  # the test case comes from the release's own test split
    images.mkdir()
    case = next(p.name for p in release.iterdir() if not any(p.glob(f"*{layout.tag(layout.seg)}.nii.gz")))
    for c, suffix in enumerate(layout.modalities):
        (images / f"{case}_{c:04d}.nii.gz").symlink_to(release / case / f"{case}{layout.tag(suffix)}.nii.gz")
    pred, refined = tmp_path / "pred", tmp_path / "refined"
    nnunet.predict(images, pred, dataset_id, [0], TRAINER, PLANS, workers=0)
    refine = [
        "refine",
        "-i",
        str(pred),
        "-o",
        str(refined),
        "-d",
        str(dataset_id),
        "-tr",
        TRAINER,
        "-p",
        PLANS,
    ]
    assert main([*refine, "-f", "0", "--images", str(images)]) == 0
    probabilities = np.load(refined / f"{case}.npz")["probabilities"]
    channels = 4 if len(convention.regions) > 1 else 2  # a sigmoid per region; MEN-RT: softmax, 2 classes
    assert probabilities.shape == (channels, 32, 32, 32)
    segmentation = sitk.GetArrayFromImage(sitk.ReadImage(str(refined / f"{case}.nii.gz")))
    assert set(np.unique(segmentation)) <= values

    labels_ts = tmp_path / "synth_raw" / "Dataset007_Release" / "labelsTs"
    summary_file = tmp_path / "summary.json"
    assert (
        main(
            ["evaluate", str(labels_ts), str(refined), "-djfile", str(refined / "dataset.json")]
            + ["-o", str(summary_file), "-np", "1"]
        )
        == 0
    )
    summary = json.loads(summary_file.read_text())
    region_names = summary["settings"]["region_names"]
    assert set(region_names.values()) == names
    assert region_names[key_region] == ("GTV" if challenge == "brats2024-men-rt" else "TC")
    # nnU-Net's own evaluation reads the same dataset.json
    nnunet_summary = nnunet.evaluate_folder(
        labels_ts, refined, refined / "dataset.json", refined / "plans.json"
    )
    assert len(json.loads(nnunet_summary.read_text())["mean"]) == len(names)
    capsys.readouterr()
    report = [
        "report",
        "--pred-folder",
        str(refined),
        "--images-folder",
        str(images),
        "-o",
        str(tmp_path / "r"),
    ]
    assert main([*report, "--offline"]) == 0
    folder = tmp_path / "r" / case
    measurements = json.loads((folder / "measurements.json").read_text())
    assert measurements["convention"] == challenge
    words = vocabulary(challenge)
    assert set(measurements["volumes_cm3"]) == set(words.subregions)
    report_md = (folder / "report.md").read_text()
    for label in convention.labels:  # the measurements table names every label as the challenge does
        assert f"({label.short}, label {label.value})" in report_md
    assert f"{convention.title} labels" in report_md
    assert json.loads((folder / "report.json").read_text())["flagged_statements"] == []
