"""Page helpers of `benchmark/rows.py`: learning curves read from nnU-Net's checkpoints, their table, stage times."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from nnunet_diffrefine.benchmark.rows import curve_table, learning_curves, stage_times


def _checkpoint(fold: Path, epochs: int, start: float, durations: list[float] | None) -> None:
    """A ``checkpoint_final.pth`` whose ``logging`` is laid out as nnU-Net's logger saves it."""
    logging = {
        "ema_fg_dice": list(np.linspace(0.1, 0.8, epochs)),
        "train_losses": list(np.linspace(1.0, 0.2, epochs)),
        "val_losses": list(np.linspace(1.1, 0.3, epochs)),
        "lrs": list(np.linspace(1e-3, 1e-5, epochs)),
    }
    if durations is not None:  # epochs back to back, as one sitting would log them
        starts = start + np.concatenate([[0.0], np.cumsum(durations)[:-1]])
        logging["epoch_start_timestamps"] = list(starts)
        logging["epoch_end_timestamps"] = list(starts + np.asarray(durations))
    fold.mkdir(parents=True)
    torch.save({"logging": logging}, fold / "checkpoint_final.pth")


def test_epoch_seconds_are_nnunets_epoch_times_and_the_table_sums_them(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    times = {f: list(rng.uniform(100.0, 160.0, 8).round(1)) for f in (0, 1)}
    for f in (0, 1):
        _checkpoint(tmp_path / "swin" / f"fold_{f}", 8, 1.8e9 + 1e5 * f, times[f])
    _checkpoint(tmp_path / "old" / "fold_0", 8, 0.0, None)  # written before nnU-Net kept timestamps
    (tmp_path / "old" / "fold_1").mkdir()  # a fold still training: no checkpoint_final.pth
    curves = learning_curves({"Swin-UNETR": tmp_path / "swin", "Old": tmp_path / "old"}, [0, 1])

    assert set(curves["Swin-UNETR"]) == {"0", "1"} and set(curves["Old"]) == {"0"}
    for f in (0, 1):
        np.testing.assert_allclose(curves["Swin-UNETR"][str(f)]["epoch_seconds"], times[f], atol=0.05)
    assert "epoch_seconds" not in curves["Old"]["0"]

    table = curve_table(curves)
    swin = next(line for line in table if line.startswith("| Swin-UNETR |"))
    assert swin.endswith(f"| {sum(times[0] + times[1]) / 3600:.2f} |")
    old = next(line for line in table if line.startswith("| Old |"))
    assert old.endswith("| n/a |")
    assert all(line.count("|") == 5 for line in table)
    untimed = curve_table({"Old": curves["Old"]})  # a page of an older run keeps its three columns
    assert all(line.count("|") == 4 for line in untimed) and untimed[2].startswith("| Old | ")


def test_stage_times_name_the_sittings_that_stopped_before_a_stage_finished() -> None:
    record = {
        "stage_seconds": {
            "convert": 4.2,
            "train Swin-UNETR fold 1": 7000.5,
            "train X fold 0 (reference)": 9.0,
        },
        "stage_unfinished_sittings": {"train Swin-UNETR fold 1": 2},
    }
    assert stage_times(record, skip_suffix=" (reference)") == (
        "convert 4.2, train Swin-UNETR fold 1 7000.5 (2 sittings stopped before it finished included)"
    )
    record["stage_unfinished_sittings"] = {"convert": 1}
    assert stage_times(record).startswith("convert 4.2 (1 sitting stopped before it finished included), ")
    del record["stage_unfinished_sittings"]  # a record written before the field existed
    assert (
        stage_times(record) == "convert 4.2, train Swin-UNETR fold 1 7000.5, train X fold 0 (reference) 9.0"
    )
