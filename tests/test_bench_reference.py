"""Rows of an earlier cross-validated run read from its results JSON (``--reference``): refused when the
protocol differs, paired by case to the same numbers as in the run that scored them (no data needed)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from nnunet_diffrefine.benchmark.reference import imported_folds, read_reference, reference_problems
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


def _split(run8: dict, row: str) -> dict[int, dict]:
    """``row``'s committed per-case scores of run 8, per fold."""
    return {
        k: {c: run8["per_case"][row][c] for c in split["val"]}
        for k, split in enumerate(run8["settings"]["folds"])
    }


def test_imported_folds_pair_by_case_to_the_numbers_of_the_run_that_scored_them(run8):
    stock, mednext, splits = "nnU-Net (stock)", "MedNeXt", run8["settings"]["folds"]
    extra = imported_folds(run8, {mednext: {0, 1, 2}}, splits, RUN8)
    assert mednext not in extra["scores"] and extra["scores"][stock] == _split(run8, stock)
    assert set(extra["learning_curves"]) == {stock} and set(extra["learning_curves"][stock]) == {
        "0",
        "1",
        "2",
    }
    # the stages of the imported rows only, matched exactly (not a row whose name extends another's)
    assert "train nnU-Net (stock) fold 0" in extra["stage_seconds"]
    assert not any(k.startswith("train MedNeXt") for k in extra["stage_seconds"])
    others = {r: {0, 1, 2} for r in run8["per_case"] if r != "CorrDiff on nnU-Net"}
    only = imported_folds(run8, others, splits, RUN8)
    assert set(only["stage_seconds"]) == {
        f"{kind} CorrDiff on nnU-Net fold {f}" for kind in ("train refiner", "refine") for f in range(3)
    }
    # a run that trained MedNeXt's fold 1 itself imports folds 0 and 2 only
    part = imported_folds(run8, {**others, "CorrDiff on nnU-Net": {0, 1, 2}, mednext: {1}}, splits, RUN8)
    assert set(part["scores"]) == {mednext} and set(part["scores"][mednext]) == {0, 2}
    assert set(part["learning_curves"][mednext]) == {"0", "2"}
    assert set(part["stage_seconds"]) == {"train MedNeXt fold 0", "train MedNeXt fold 2"}
    # a row of this run paired with an imported one gives the pair the reference itself wrote
    stock_scores = {c: v for fold in extra["scores"][stock].values() for c, v in fold.items()}
    pair = paired_comparison(stock_scores, run8["per_case"][mednext], run8["seed"])
    written = next(c for c in run8["comparisons"] if (c["a"], c["b"]) == (stock, mednext))
    assert json.loads(json.dumps(pair)) == {k: v for k, v in written.items() if k not in ("a", "b")}
    row = row_record(
        "CorrDiff on nnU-Net",
        run8["per_case"]["CorrDiff on nnU-Net"],
        ("TC", "WT", "ET"),
        stock,
        stock_scores,
        run8["seed"],
    )
    assert json.loads(json.dumps(row)) == next(r for r in run8["rows"] if r["name"] == "CorrDiff on nnU-Net")
    with pytest.raises(InputError, match="holds other cases than this run"):
        imported_folds(run8, {}, [splits[0], splits[1], {**splits[2], "val": splits[2]["val"][1:]}], RUN8)
    broken = {**run8, "partial_per_case": {"Swin-UNETR": {"1": _split(run8, stock)[0]}}}
    with pytest.raises(InputError, match="'Swin-UNETR' fold 1 holds other cases than this run's fold 1"):
        imported_folds(broken, {}, splits, RUN8)


def _run(tmp_path: Path, run8: dict, bases: tuple, epochs: int | None = None):
    """A benchmark on run 8's protocol and cases in ``tmp_path`` (no data: scores are patched in)."""
    import sys

    sys.path.insert(0, str(RUN8.parents[2] / "benchmarks"))
    from _setup import workspace

    from nnunet_diffrefine.benchmark import crossval

    s = run8["settings"]
    settings = crossval.CrossValSettings(
        work=tmp_path,
        real_root=tmp_path,
        epochs=epochs or s["epochs"],
        refiner_patch=tuple(s["refiner_patch"]),
        refiner_set=tuple(s["refiner_set"]),
        bases=bases,
        refined=(),
    )
    b = crossval.CrossValBenchmark(settings, workspace(tmp_path))
    (b.raw / "labelsTr").mkdir(parents=True, exist_ok=True)
    for case in run8["per_case"]["MedNeXt"]:
        (b.raw / "labelsTr" / f"{case}.nii.gz").touch()
    b.pre.mkdir(parents=True, exist_ok=True)
    (b.pre / "splits_final.json").write_text(json.dumps(b.splits()))
    return b


def test_a_base_model_trained_over_two_runs_is_paired_with_the_referenced_rows(run8, tmp_path, monkeypatch):
    """A first run scores "Swin-UNETR" on fold 0 only (here: MedNeXt's committed scores under that name),
    referencing run 8: the row is kept per fold, not in the table. A second run scores folds 1 and 2 and
    references the first: the row is complete, paired with stock nnU-Net exactly as run 8 paired MedNeXt,
    and the pages say where each part comes from."""
    from nnunet_diffrefine.benchmark import crossval
    from nnunet_diffrefine.benchmark.crossval_markdown import markdown

    swin, stock = "Swin-UNETR", "nnU-Net (stock)"
    mednext = _split(run8, "MedNeXt")
    own: dict = {}
    monkeypatch.setattr(crossval, "evaluate_folds", lambda b, row: own.get(row, {}))
    monkeypatch.setattr("nnunet_diffrefine.benchmark.rows.learning_curves", lambda models, folds: {})

    own[swin] = {0: mednext[0]}
    first = crossval.results_record(_run(tmp_path / "a", run8, (swin,)), "", RUN8)
    assert swin not in first["per_case"] and first["partial_per_case"] == {swin: {"0": mednext[0]}}
    assert [r["name"] for r in first["rows"]] == [r["name"] for r in run8["rows"]]
    assert first["settings"]["reference"]["rows"][stock] == [0, 1, 2]
    assert "- Swin-UNETR: fold 0 of 3 (5 cases)" in markdown(first)
    (tmp_path / "first.json").write_text(json.dumps(first))

    own[swin] = {1: mednext[1], 2: mednext[2]}
    second = crossval.results_record(_run(tmp_path / "b", run8, (swin,)), "", tmp_path / "first.json")
    names = [r["name"] for r in second["rows"]]
    assert names[:3] == [stock, "MedNeXt", swin] and len(names) == len(run8["rows"]) + 1
    assert "partial_per_case" not in second
    assert second["settings"]["reference"]["rows"][swin] == [0]
    # stage times read through a chain of references keep one mark
    assert second["stage_seconds"]["train nnU-Net (stock) fold 1 (reference)"] == 1579.1
    pair = next(c for c in second["comparisons"] if (c["a"], c["b"]) == (stock, swin))
    written = next(c for c in run8["comparisons"] if (c["a"], c["b"]) == (stock, "MedNeXt"))
    assert {**pair, "b": "MedNeXt"} == written
    assert second["refiners"].keys() == run8["refiners"].keys() and second["protocol_problems"] == []
    assert "Rows read from `first.json`" in markdown(second) and "Swin-UNETR (fold 0)" in markdown(second)
    # and where the first run had read its rows from in turn: each row's provenance survives the chain
    via = second["settings"]["reference"]["via"]
    assert via == first["settings"]["reference"] and via["file"] == RUN8.name and "via" not in via
    page = markdown(second)
    assert f"Measured by the run that wrote `first.json` at {first['commit'][:7]}: {swin} (fold 0)." in page
    assert f"Measured by the run that wrote `{RUN8.name}` at {run8['commit'][:7]}: {stock}; MedNeXt;" in page
    assert page.count(f"{swin} (fold 0)") == 2  # read from first.json, measured there: each row once more
    assert "via" not in first["settings"]["reference"] and "Measured by" not in markdown(first)
    with pytest.raises(InputError, match="epochs: 50 there, 80 here"):
        crossval.results_record(_run(tmp_path / "c", run8, (swin,), epochs=80), "", RUN8)


def _chain(record: dict) -> list[str]:
    """The files of a record's reference chain, top first."""
    link, files = record["settings"].get("reference"), []
    while link:
        files.append(link["file"])
        link = link.get("via")
    return files


def test_sittings_that_measure_nothing_do_not_lengthen_the_reference_chain(run8, tmp_path, monkeypatch):
    """Each sitting names its own output as ``--reference``. One that scores a fold adds a link; the
    sittings after it that only rewrite the file keep the chain at one link more and the page's
    provenance (which run measured which row) word for word."""
    from nnunet_diffrefine.benchmark import crossval
    from nnunet_diffrefine.benchmark.crossval_markdown import markdown

    swin = "Swin-UNETR"
    mednext = _split(run8, "MedNeXt")
    own: dict = {}
    monkeypatch.setattr(crossval, "evaluate_folds", lambda b, row: own.get(row, {}))
    monkeypatch.setattr("nnunet_diffrefine.benchmark.rows.learning_curves", lambda models, folds: {})

    own[swin] = {0: mednext[0], 1: mednext[1], 2: mednext[2]}
    records = [crossval.results_record(_run(tmp_path / "s0", run8, (swin,)), "", RUN8)]
    own.clear()  # later sittings read every row from the previous one's file and score nothing
    for k in range(1, 5):
        (tmp_path / f"s{k - 1}.json").write_text(json.dumps(records[-1]))
        records.append(
            crossval.results_record(_run(tmp_path / f"s{k}", run8, (swin,)), "", tmp_path / f"s{k - 1}.json")
        )
    assert [_chain(r) for r in records] == [
        [RUN8.name],
        ["s0.json", RUN8.name],
        ["s1.json", "s0.json", RUN8.name],  # s1 measured nothing, but it is the file read: kept on top
        ["s2.json", "s0.json", RUN8.name],  # s1's link dropped: it measured nothing
        ["s3.json", "s0.json", RUN8.name],
    ]
    measured = [
        line[line.index("Measured by") :]
        for r in records[1:]
        for line in markdown(r).splitlines()
        if "Measured by" in line
    ]
    assert len(measured) == 4 and len(set(measured)) == 1
    assert measured[0].startswith(
        f"Measured by the run that wrote `s0.json` at {records[0]['commit'][:7]}: {swin}."
    )
    assert [r["rows"] for r in records[1:]] == [records[0]["rows"]] * 4
