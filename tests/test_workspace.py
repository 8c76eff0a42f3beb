"""The workspace layer: nnU-Net's folders as one value, its commands as one API, one stage runner; and
the environment read in one module only."""

from __future__ import annotations

import ast
import dataclasses
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nnunet_diffrefine.environment import nnunet_folders
from nnunet_diffrefine.errors import InputError
from nnunet_diffrefine.workspace import (
    CommandError,
    NnUNetCommands,
    NnUNetFolders,
    Stage,
    StageError,
    StageRunner,
    trainer_folder,
)

PACKAGE = Path(__file__).resolve().parents[1] / "nnunet_diffrefine"


def test_folders_resolve_datasets_from_the_folders_themselves(tmp_path):
    folders = NnUNetFolders.under(tmp_path)
    assert folders.variables() == {
        "nnUNet_raw": str(tmp_path / "nnUNet_raw"),
        "nnUNet_preprocessed": str(tmp_path / "nnUNet_preprocessed"),
        "nnUNet_results": str(tmp_path / "nnUNet_results"),
    }
    with pytest.raises(InputError, match="no dataset 12 in the nnU-Net folders"):
        folders.dataset_name(12)
    (tmp_path / "nnUNet_raw" / "Dataset012_Brain").mkdir(parents=True)
    assert folders.dataset_name(12) == folders.dataset_name("12") == "Dataset012_Brain"
    assert folders.dataset_name("Dataset012_Brain") == "Dataset012_Brain"
    (tmp_path / "nnUNet_results" / "Dataset012_Other").mkdir(parents=True)
    with pytest.raises(InputError, match="several datasets: Dataset012_Brain, Dataset012_Other"):
        folders.dataset_name(12)
    with pytest.raises(InputError, match="run nnUNetv2_plan_and_preprocess -d 12 first"):
        folders.preprocessed_dataset(12)
    (tmp_path / "nnUNet_preprocessed" / "Dataset012_Brain").mkdir(parents=True)
    assert folders.preprocessed_dataset(12) == tmp_path / "nnUNet_preprocessed" / "Dataset012_Brain"
    with pytest.raises(InputError, match="train the model first"):
        folders.model_folder("Dataset012_Brain", "nnUNetTrainer", "nnUNetPlans", "3d_fullres")
    model = folders.model_path("Dataset012_Brain", "nnUNetTrainer", "nnUNetPlans", "3d_fullres")
    assert (
        model == tmp_path / "nnUNet_results" / "Dataset012_Brain" / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    )


def test_an_unset_folder_is_one_error_naming_its_variable(tmp_path):
    folders = nnunet_folders({"nnUNet_raw": str(tmp_path), "nnUNet_results": ""})
    assert folders.raw == tmp_path and folders.results is None and folders.preprocessed is None
    with pytest.raises(InputError, match="nnUNet_results is not set"):
        folders.model_folder(1, "T", "P", "3d_fullres")
    with pytest.raises(InputError, match="nnUNet_preprocessed is not set"):
        folders.preprocessed_dataset(1)
    merged = folders.with_defaults(NnUNetFolders.under(tmp_path / "default"))
    assert merged.raw == tmp_path and merged.results == (tmp_path / "default" / "nnUNet_results").resolve()


def test_commands_run_in_the_workspace_environment_and_fail_with_the_command(tmp_path, monkeypatch):
    seen = []

    def fake_run(command, env, capture_output):
        seen.append((command, env))
        code = 3 if "nnUNetv2_ensemble" in command[0] else 0
        return subprocess.CompletedProcess(command, code, "out", "err")

    monkeypatch.setattr("nnunet_diffrefine.workspace.commands.run_process_group", fake_run)
    folders = NnUNetFolders.under(tmp_path)
    nnunet = NnUNetCommands(
        folders, {"PATH": "/bin", "nnUNet_raw": "/elsewhere"}, num_processes=3, echo=False
    )
    nnunet.train(7, 1, "MedNeXtTrainer", "P", extra_environment={"DIFFREFINE_NUM_EPOCHS": "2"})
    command, env = seen[-1]
    assert command[1:] == [
        "7",
        "3d_fullres",
        "1",
        "-tr",
        "MedNeXtTrainer",
        "-p",
        "P",
        "-device",
        "cpu",
        "--npz",
        "--c",
    ]
    assert env["nnUNet_raw"] == str(tmp_path / "nnUNet_raw"), "the workspace's folders win"
    assert env["PATH"] == "/bin" and env["DIFFREFINE_NUM_EPOCHS"] == "2"
    assert env["nnUNet_extTrainer"] == str(trainer_folder())
    assert env["nnUNet_n_proc_DA"] == env["nnUNet_def_n_proc"] == "3"
    nnunet.plan_and_preprocess(7, ("2d", "3d_fullres"), verify_integrity=True)
    assert seen[-1][0][1:] == [
        "-d",
        "7",
        "-c",
        "2d",
        "3d_fullres",
        "-np",
        "3",
        "3",
        "-npfp",
        "3",
        "--verify_dataset_integrity",
    ]
    nnunet.plan_and_preprocess(7, target_spacing_mm=(4, 4, 4), plans_name="nnUNetPlans4mm")
    assert seen[-1][0][-6:] == [
        "-overwrite_target_spacing",
        "4",
        "4",
        "4",
        "-overwrite_plans_name",
        "nnUNetPlans4mm",
    ]
    nnunet.predict("in", "out", 7, [0, 1], "T", "P", mirroring=False, workers=0)
    assert seen[-1][0][1:] == (
        ["-i", "in", "-o", "out", "-d", "7", "-c", "3d_fullres", "-f", "0", "1", "-tr", "T", "-p", "P"]
        + ["-device", "cpu", "-npp", "0", "-nps", "0", "--save_probabilities", "--disable_tta"]
    )
    with pytest.raises(CommandError, match=r"nnUNetv2_ensemble -i a b -o c -np 3' exited with code 3"):
        nnunet.ensemble(["a", "b"], "c")
    # nnUNet_n_proc_DA=0 (single-threaded augmentation) reaches training, not nnU-Net's planner, which
    # would pass it to torch.set_num_threads
    single = NnUNetCommands(folders, {"nnUNet_n_proc_DA": "0"}, echo=False)
    single.train(7, 0, "T", "P")
    assert seen[-1][1]["nnUNet_n_proc_DA"] == "0"
    single.plan_and_preprocess(7)
    assert seen[-1][1]["nnUNet_n_proc_DA"] == "1"
    # with intensity_samples: the fingerprint first (it verifies the dataset), then nnU-Net plans from it
    sampled = dataclasses.replace(nnunet, intensity_samples=5000)
    sampled.plan_and_preprocess(7, verify_integrity=True)
    fingerprint, planning = seen[-2][0], seen[-1][0]
    assert fingerprint[1:] == ["-m", "nnunet_diffrefine.workspace.fingerprint", "-d", "7", "-np", "3"] + [
        "--verify_dataset_integrity",
        "--intensity-samples",
        "5000",
    ]
    assert (
        planning[0].endswith("nnUNetv2_plan_and_preprocess") and "--verify_dataset_integrity" not in planning
    )


def _fingerprint(tmp_path: Path, raw: Path, intensity_samples: int) -> dict:
    from conftest import isolated_nnunet_env

    root = tmp_path / str(intensity_samples)
    root.mkdir()
    env = isolated_nnunet_env(root)
    nnunet = NnUNetCommands(NnUNetFolders.from_mapping(env), env, 1, echo=False, capture_output=True)
    (Path(env["nnUNet_raw"]) / raw.name).symlink_to(raw, target_is_directory=True)
    dataclasses.replace(nnunet, intensity_samples=intensity_samples).extract_fingerprint(991)
    return json.loads((Path(env["nnUNet_preprocessed"]) / raw.name / "dataset_fingerprint.json").read_text())


def test_a_fingerprint_with_fewer_intensity_draws_keeps_the_geometry_and_the_statistics(tmp_path):
    """Known answers from the files: each case's spacing and the shape of its non-zero box; each
    channel's foreground mean and std within 5 standard errors of the cases' foreground voxels' (each case
    weighted equally, as nnU-Net draws as many from each); and with one
    draw per case the draws are honoured (their maximum misses the foreground's, which nnU-Net's
    10^8 draws would hit)."""
    import numpy as np
    import SimpleITK as sitk

    from nnunet_diffrefine.data.synth import SynthConfig, synthesize_dataset

    synthesize_dataset(
        tmp_path / "raw", 991, "Fp", 3, 1, SynthConfig(shape=(32,) * 3, seed=2), progress=False
    )
    raw = tmp_path / "raw" / "Dataset991_Fp"
    samples = 30_000
    fingerprint = _fingerprint(tmp_path, raw, samples)
    cases = sorted(p.name[: -len(".nii.gz")] for p in (raw / "labelsTr").glob("*.nii.gz"))
    channels = [[] for _ in range(4)]
    for k, case in enumerate(cases):
        images = [sitk.ReadImage(str(raw / "imagesTr" / f"{case}_{c:04d}.nii.gz")) for c in range(4)]
        arrays = np.stack([sitk.GetArrayFromImage(i) for i in images])
        label = sitk.GetArrayFromImage(sitk.ReadImage(str(raw / "labelsTr" / f"{case}.nii.gz")))
        box = np.argwhere((arrays != 0).any(0))
        assert fingerprint["shapes_after_crop"][k] == list(box.max(0) - box.min(0) + 1), case
        assert fingerprint["spacings"][k] == pytest.approx(images[0].GetSpacing()[::-1]), case
        for c in range(4):
            channels[c].append(arrays[c][label > 0])
    for c, per_case in enumerate(channels):  # nnU-Net draws as many from each case: an equal mixture
        mean = np.mean([v.mean() for v in per_case])
        std = np.sqrt(np.mean([v.var() + v.mean() ** 2 for v in per_case]) - mean**2)
        found = fingerprint["foreground_intensity_properties_per_channel"][str(c)]
        error = 5 * std / np.sqrt(samples)
        assert found["mean"] == pytest.approx(mean, abs=error), c
        assert found["std"] == pytest.approx(std, abs=2 * error), c
        values = np.concatenate(per_case)
        assert values.min() <= found["min"] and found["max"] <= values.max(), c

    one_each = _fingerprint(tmp_path, raw, len(cases))["foreground_intensity_properties_per_channel"]
    maxima = [np.concatenate(v).max() for v in channels]
    assert any(one_each[str(c)]["max"] < maxima[c] for c in range(4))
    with pytest.raises(CommandError, match="must be at least the number of training cases"):
        _fingerprint(tmp_path, raw, len(cases) - 1)


def test_stage_runner_skips_done_stages_keeps_wall_times_and_names_a_failure(tmp_path):
    state, done = tmp_path / "state.json", set()
    stages = [
        Stage("first", "the first", lambda: done.add("first"), lambda: "first" in done),
        Stage("second", "the second", lambda: done.add("second"), lambda: "second" in done),
    ]
    assert StageRunner(state, log=lambda _: None).run(stages) == {"first": "done", "second": "done"}
    recorded = json.loads(state.read_text())["seconds"]
    assert set(recorded) == {"first", "second"} and all(v >= 0 for v in recorded.values())
    assert StageRunner(state, log=lambda _: None).run(stages) == {"first": "skipped", "second": "skipped"}

    def boom() -> None:
        raise OSError("disk full")

    with pytest.raises(StageError, match="stage 'third' failed: OSError: disk full"):
        StageRunner(state, log=lambda _: None).run([Stage("third", "x", boom, lambda: False)])
    with pytest.raises(StageError, match="stage 'fourth' finished but its outputs are incomplete"):
        StageRunner(state, log=lambda _: None).run([Stage("fourth", "x", lambda: None, lambda: False)])
    # the form the benchmark scripts use: a stage that always runs is not checked afterwards
    runner = StageRunner(state, log=lambda _: None)
    assert runner("splits", lambda: False, lambda: None) == "done"
    assert runner.seconds.keys() >= {"first", "second", "splits"}
    state.write_text(json.dumps({"old": 3.0}))  # an older state file: the times alone
    assert StageRunner(state).seconds == {"old": 3.0}


def test_stage_runner_counts_the_time_of_sittings_that_stop_before_a_stage_finishes(tmp_path):
    state, done = tmp_path / "state.json", set()

    def interrupted() -> None:
        time.sleep(0.2)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # not turned into a StageError: the sitting ends as asked
        StageRunner(state, log=lambda _: None).run([Stage("train", "t", interrupted, lambda: False)])
    first = json.loads(state.read_text())
    assert first["seconds"]["train"] >= 0.2 and first["unfinished"] == {"train": 1}

    def finishes() -> None:
        time.sleep(0.1)
        done.add("train")

    runner = StageRunner(state, log=lambda _: None)
    assert runner.run([Stage("train", "t", finishes, lambda: "train" in done)]) == {"train": "done"}
    second = json.loads(state.read_text())
    assert second["seconds"]["train"] >= first["seconds"]["train"] + 0.05  # both sittings summed (to 0.1 s)
    assert second["unfinished"] == {"train": 1} and runner.unfinished == {"train": 1}


def test_sigterm_ends_a_stage_with_its_time_recorded(tmp_path):
    """A benchmark stopped with ``kill`` (what ``pkill -f bench_refinement_real.py`` sends) records the
    sitting; run as a separate process so that the signal goes to it alone."""
    state = tmp_path / "state.json"
    script = (
        "import time\n"
        "from nnunet_diffrefine.workspace import Stage, StageRunner, exit_on_sigterm\n"
        "exit_on_sigterm()\n"
        f"runner = StageRunner({str(state)!r}, log=lambda line: print(line, flush=True))\n"
        "runner.run([Stage('train', 'train', lambda: time.sleep(60), lambda: False)])\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert "[1/1] train" in process.stdout.readline()  # the stage has started
    time.sleep(0.3)
    process.terminate()
    assert process.wait(timeout=30) == 128 + signal.SIGTERM
    recorded = json.loads(state.read_text())
    assert recorded["unfinished"] == {"train": 1} and 0.3 <= recorded["seconds"]["train"] < 30


def _environment_reads(path: Path) -> list[int]:
    """Lines of ``path`` that use ``os.environ`` or ``os.getenv``."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv"):
            if isinstance(node.value, ast.Name) and node.value.id == "os":
                lines.append(node.lineno)
    return lines


def test_only_the_settings_module_and_the_command_line_read_the_environment():
    readers = {
        str(p.relative_to(PACKAGE)): _environment_reads(p)
        for p in PACKAGE.rglob("*.py")
        if _environment_reads(p)
    }
    allowed = {"environment.py"}
    outside = {k: v for k, v in readers.items() if k not in allowed and not k.startswith("cli/")}
    assert not outside, f"the environment is read outside environment.py and cli/: {outside}"


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its new parent to reap it counts as ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_an_interrupted_command_ends_the_processes_it_started(tmp_path):
    """As ``nnUNetv2_train`` and its data-augmentation workers: killing the benchmark ends both."""
    pid_file = tmp_path / "worker.pid"
    command = [
        sys.executable,
        "-c",
        "import subprocess, sys, time\n"
        "worker = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(worker.pid))\n"
        "time.sleep(60)\n",
    ]
    script = (
        "from nnunet_diffrefine.workspace import exit_on_sigterm\n"
        "from nnunet_diffrefine.workspace.commands import run_process_group\n"
        "exit_on_sigterm()\n"
        f"run_process_group({command!r})\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script])
    for _ in range(200):
        if pid_file.is_file() and pid_file.read_text():
            break
        time.sleep(0.1)
    worker = int(pid_file.read_text())
    assert _alive(worker)
    process.terminate()
    assert process.wait(timeout=30) == 128 + signal.SIGTERM
    for _ in range(50):
        if not _alive(worker):
            break
        time.sleep(0.1)
    assert not _alive(worker), "the command's own child outlived the interrupted benchmark"


def test_run_process_group_returns_what_subprocess_run_would(tmp_path):
    command = [sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"]
    from nnunet_diffrefine.workspace.commands import run_process_group

    result = run_process_group(command, capture_output=True)
    expected = subprocess.run(command, capture_output=True, text=True)
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert (result.returncode, result.stdout, result.stderr) == (
        expected.returncode,
        expected.stdout,
        expected.stderr,
    )
