"""Rows of an earlier cross-validated run read from its results JSON (``--reference``): refused when the
protocol differs, paired by case to the same numbers as in the run that scored them (no data needed)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from nnunet_diffrefine.benchmark.reference import imported_rows, read_reference, reference_problems
from nnunet_diffrefine.benchmark.rows import paired_comparison, row_record
from nnunet_diffrefine.errors import InputError

RUN8 = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "refinement_real_run8.json"


@pytest.fixture(scope="module")
def run8() -> dict:
    return json.loads(RUN8.read_text())


def _settings_of_a_later_run(run8: dict) -> dict:
    """The settings a later run of other rows on the same protocol writes (tuples, other rows, other
    snapshots kept)."""
    settings = copy.deepcopy(run8["settings"])
    settings.update(bases=("Res U-Net", "SegResNet"), refined=(), keep_checkpoints=())
    settings["refiner_patch"] = tuple(settings["refiner_patch"])
    settings["cpu_schedule"]["keep_checkpoints"] = []
    settings["patch_size"] = {"Res U-Net": [64, 64, 64]}
    return settings


def test_a_run_of_other_rows_on_the_same_protocol_may_reference_it(run8):
    assert reference_problems(run8["settings"], _settings_of_a_later_run(run8)) == []
    assert read_reference(RUN8, _settings_of_a_later_run(run8))["commit"] == run8["commit"]


def test_every_protocol_difference_is_named_and_the_file_refused(run8, tmp_path):
    later = _settings_of_a_later_run(run8)
    later["epochs"] = 80
    later["cpu_schedule"]["epochs"] = 80
    later["folds"] = [dict(f) for f in reversed(later["folds"])]
    problems = reference_problems(run8["settings"], later)
    assert [p.split(":")[0] for p in problems] == ["folds", "epochs", "cpu_schedule"]
    with pytest.raises(InputError, match=r"refinement_real_run8\.json.*folds.*epochs"):
        read_reference(RUN8, later)
    with pytest.raises(InputError, match="missing.json: reference results file does not exist"):
        read_reference(tmp_path / "missing.json", later)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match="bad.json: not a readable results JSON"):
        read_reference(tmp_path / "bad.json", later)
    (tmp_path / "other.json").write_text(json.dumps({"rows": []}))
    with pytest.raises(InputError, match="other.json: not a cross-validated benchmark record"):
        read_reference(tmp_path / "other.json", later)


def test_imported_rows_pair_by_case_to_the_numbers_of_the_run_that_scored_them(run8):
    stock, mednext = "nnU-Net (stock)", "MedNeXt"
    cases = set(run8["per_case"][stock])
    extra = imported_rows(run8, {mednext}, cases, RUN8)
    assert mednext not in extra["scores"] and stock in extra["scores"]
    assert set(extra["learning_curves"]) == {stock}
    # the stages of the imported rows only, matched exactly (not a row whose name extends another's)
    assert "train nnU-Net (stock) fold 0" in extra["stage_seconds"]
    assert not any(k.startswith("train MedNeXt") for k in extra["stage_seconds"])
    only = imported_rows(run8, set(run8["per_case"]) - {"CorrDiff on nnU-Net"}, cases, RUN8)
    assert set(only["stage_seconds"]) == {
        f"{kind} CorrDiff on nnU-Net fold {f}" for kind in ("train refiner", "refine") for f in range(3)
    }
    # a row of this run paired with an imported one gives the pair the reference itself wrote
    pair = paired_comparison(extra["scores"][stock], run8["per_case"][mednext], run8["seed"])
    written = next(c for c in run8["comparisons"] if (c["a"], c["b"]) == (stock, mednext))
    assert json.loads(json.dumps(pair)) == {k: v for k, v in written.items() if k not in ("a", "b")}
    row = row_record(
        "CorrDiff on nnU-Net",
        run8["per_case"]["CorrDiff on nnU-Net"],
        ("TC", "WT", "ET"),
        stock,
        extra["scores"][stock],
        run8["seed"],
    )
    assert json.loads(json.dumps(row)) == next(r for r in run8["rows"] if r["name"] == "CorrDiff on nnU-Net")
    with pytest.raises(InputError, match="holds other cases than this run"):
        imported_rows(run8, {mednext}, cases - {sorted(cases)[0]}, RUN8)


def test_a_run_of_another_base_model_is_paired_with_the_referenced_rows(run8, tmp_path, monkeypatch):
    """``results_record`` of a run that scored only "Res U-Net" (here: MedNeXt's committed scores under
    that name) with run 8 as reference: run 8's rows added, Res U-Net paired with stock nnU-Net, and the
    page names where the imported rows come from."""
    import sys

    sys.path.insert(0, str(RUN8.parents[2] / "benchmarks"))
    from _setup import workspace

    from nnunet_diffrefine.benchmark import crossval
    from nnunet_diffrefine.benchmark.crossval_markdown import markdown

    s = run8["settings"]
    settings = crossval.CrossValSettings(
        work=tmp_path,
        real_root=tmp_path,
        epochs=s["epochs"],
        refiner_patch=tuple(s["refiner_patch"]),
        refiner_set=tuple(s["refiner_set"]),
        bases=("Res U-Net",),
        refined=(),
    )
    b = crossval.CrossValBenchmark(settings, workspace(tmp_path))
    (b.raw / "labelsTr").mkdir(parents=True)
    for case in run8["per_case"]["MedNeXt"]:
        (b.raw / "labelsTr" / f"{case}.nii.gz").touch()
    b.pre.mkdir(parents=True)
    (b.pre / "splits_final.json").write_text(json.dumps(b.splits()))
    own = {"Res U-Net": run8["per_case"]["MedNeXt"]}
    monkeypatch.setattr(crossval, "evaluate_row", lambda b, row: own.get(row))
    monkeypatch.setattr("nnunet_diffrefine.benchmark.rows.learning_curves", lambda models, folds: {})

    record = crossval.results_record(b, "python benchmarks/bench_refinement_real.py", RUN8)
    names = [r["name"] for r in record["rows"]]
    assert names[:3] == ["nnU-Net (stock)", "MedNeXt", "Res U-Net"] and len(names) == len(run8["rows"]) + 1
    pair = next(c for c in record["comparisons"] if (c["a"], c["b"]) == ("nnU-Net (stock)", "Res U-Net"))
    written = next(c for c in run8["comparisons"] if (c["a"], c["b"]) == ("nnU-Net (stock)", "MedNeXt"))
    assert {**pair, "b": "MedNeXt"} == written
    assert record["settings"]["reference"]["rows"] == list(run8["per_case"])
    assert record["refiners"].keys() == run8["refiners"].keys() and record["protocol_problems"] == []
    assert "Rows read from `refinement_real_run8.json`" in markdown(record)
    settings80 = crossval.CrossValSettings(**{**settings.__dict__, "epochs": 80})
    with pytest.raises(InputError, match="epochs: 50 there, 80 here"):
        crossval.results_record(crossval.CrossValBenchmark(settings80, b.nnunet), "", RUN8)
