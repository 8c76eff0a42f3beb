"""The report command: measurements, figures, LLM path against a real local HTTP server, guard, CLI."""

from __future__ import annotations

import json
import math
import shutil
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_diffrefine.cli.main import main
from nnunet_diffrefine.report.diameters import bidimensional
from nnunet_diffrefine.report.guard import check_sections, numbers_in
from nnunet_diffrefine.report.inputs import CaseInputs, load_case
from nnunet_diffrefine.report.measurements import measure
from nnunet_diffrefine.report.offline import offline_sections
from nnunet_diffrefine.report.orientation import LPSView
from nnunet_diffrefine.report.privacy import SECRET_ENV
from nnunet_diffrefine.report.prompt import ReplyFormatError, parse_reply

API_KEY = "sk-test-9f8e7d6c5b4a39281706"
KEY_ENV = "DIFFREFINE_TEST_REPORT_KEY"
MODEL = "test-model-1"


@pytest.fixture(autouse=True)
def _no_real_endpoint(monkeypatch, tmp_path):
    """Never reach a real API: no key or base URL from the developer's environment, no proxy; the
    pseudonym secret in the test's folder, not the user's configuration."""
    for name in (
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "DIFFREFINE_REPORT_MODEL",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv(KEY_ENV, API_KEY)
    monkeypatch.setenv(SECRET_ENV, str(tmp_path / "pseudonym.key"))


def _grid(spacing_zyx=(1.0, 1.0, 1.0), direction=None, origin=(0.0, 0.0, 0.0)) -> sitk.Image:
    grid = sitk.Image([1, 1, 1], sitk.sitkUInt8)
    grid.SetSpacing([float(s) for s in spacing_zyx[::-1]])
    grid.SetOrigin(origin)
    if direction is not None:
        grid.SetDirection(direction)
    return grid


def _write(array: np.ndarray, path: Path, spacing_zyx=(1.0, 1.0, 1.0), direction=None) -> Path:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing([float(s) for s in spacing_zyx[::-1]])
    if direction is not None:
        image.SetDirection(direction)
    sitk.WriteImage(image, str(path), useCompression=True)
    return path


# ---------------------------------------------------------------------------------------- measurements

SPACING = (3.0, 0.5, 0.8)  # z, y, x mm: voxel 1.2 mm³


def _box_case() -> np.ndarray:
    """ED slab z 4:8, y 10:20, x 10:30 plus rows 20:30 on slice 6; NC and ET blocks inside."""
    seg = np.zeros((12, 40, 50), np.int16)
    seg[4:8, 10:20, 10:30] = 2
    seg[6, 20:30, 10:30] = 2
    seg[5:7, 12:16, 12:16] = 1
    seg[5:7, 16:18, 12:16] = 3
    return seg


def test_volumes_proportions_and_diameters_with_anisotropic_spacing():
    m = measure(CaseInputs("box", _box_case(), _grid(SPACING), {}))
    voxel_cm3 = 3.0 * 0.5 * 0.8 / 1000
    wt, nc, et = 4 * 10 * 20 + 10 * 20, 2 * 4 * 4, 2 * 2 * 4
    expected = {"NC": nc, "ET": et, "ED": wt - nc - et, "TC": nc + et, "WT": wt}
    for name, count in expected.items():
        assert m["volumes_cm3"][name] == pytest.approx(count * voxel_cm3, abs=1e-4), name
    assert m["volumes_cm3"]["WT"] == pytest.approx(1.2)
    assert m["proportions"] == pytest.approx({"ET/TC": 1 / 3, "NC/TC": 2 / 3, "ED/WT": 0.952}, abs=1e-4)
    assert m["labels_present"] == [1, 2, 3] and m["lesions"]["count"] == 1
    axial = m["largest_slices"]["axial"]
    assert axial["file_index"] == 6 and axial["file_axis"] == "Z"
    assert axial["area_mm2"] == pytest.approx(20 * 20 * 0.5 * 0.8)
    # slice 6: a 20 x 20 voxel square = 10 mm (rows) x 16 mm (cols): the longest diameter is the
    # diagonal; the longest chord perpendicular to it runs from a corner: H * d / W
    d = math.hypot(16.0, 10.0)
    assert axial["long_diameter_mm"] == pytest.approx(d, abs=1e-3)
    assert axial["perpendicular_diameter_mm"] == pytest.approx(10.0 * d / 16.0, abs=1e-3)


def test_diameters_of_an_ellipse_are_its_axes():
    rows, cols = np.mgrid[0:120, 0:80]
    sr, sc = 0.5, 0.8  # the ellipse is defined in mm: semi-axes 20 mm (cols) and 8 mm (rows)
    mask = ((rows + 0.5) * sr - 30) ** 2 / 8**2 + ((cols + 0.5) * sc - 32) ** 2 / 20**2 <= 1
    dims = bidimensional(mask, (sr, sc))
    pixel_diagonal = math.hypot(sr, sc)
    assert 40.0 <= dims.long_mm <= 40.0 + pixel_diagonal
    assert 16.0 <= dims.perpendicular_mm <= 16.0 + pixel_diagonal
    (r0, c0), (r1, c1) = dims.long_line
    (p0, q0), (p1, q1) = dims.perpendicular_line
    assert abs((r1 - r0) * (p1 - p0) + (c1 - c0) * (q1 - q0)) < 1e-6  # perpendicular
    assert bidimensional(np.zeros((3, 3), bool), (1.0, 1.0)) is None


def test_lesions_are_26_connected_components():
    seg = np.zeros((10, 10, 10), np.int16)
    seg[2, 2, 2] = 2
    seg[3, 3, 3] = 1  # touches the first one at a corner only: same lesion under 26-connectivity
    seg[7, 7, 7] = 3
    m = measure(CaseInputs("l", seg, _grid(), {}))
    assert m["lesions"]["count"] == 2
    assert m["lesions"]["volumes_cm3"] == [0.002, 0.001]


def test_empty_segmentation_gives_zero_volumes_and_no_tumor(tmp_path):
    m = measure(CaseInputs("e", np.zeros((6, 8, 8), np.int16), _grid(SPACING), {}))
    assert m["finding"] == "no tumor segmented" and m["labels_present"] == []
    assert set(m["volumes_cm3"].values()) == {0.0}
    assert set(m["proportions"].values()) == {None}
    assert m["lesions"]["count"] == 0 and m["side"] is None and not m["crosses_midline"]
    sections = offline_sections(m)
    assert "No tumor segmented" in sections["findings"] and "No tumor segmented" in sections["impression"]
    assert check_sections(sections, m) == []
    seg_file = _write(np.zeros((6, 8, 8), np.int16), tmp_path / "Empty.nii.gz", SPACING)
    assert main(["report", "-s", str(seg_file), "-o", str(tmp_path / "out"), "--offline"]) == 0
    md = (tmp_path / "out" / "report.md").read_text()
    assert "No tumor segmented" in md and "| 0.00 | cm³ |" in md


FLIP_X = (-1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
ROTATED = (0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0)  # file y-index runs towards patient right (-x)


def _blob(x0: int, x1: int, axis: int = 2) -> np.ndarray:
    seg = np.zeros((10, 40, 40), np.int16)
    index = [slice(3, 6), slice(15, 20), slice(15, 20)]
    index[axis] = slice(x0, x1)
    seg[tuple(index)] = 2
    return seg


def test_side_and_midline_from_physical_coordinates():
    # identity direction: +x index = patient left; midline = image centre x = 19.5 mm
    m = measure(CaseInputs("a", _blob(30, 35), _grid(), {}))
    assert m["side"] == "left" and not m["crosses_midline"]
    assert m["midline"]["from"] == "image centre" and m["midline"]["x_mm"] == pytest.approx(19.5)
    assert m["centroid_offset_from_midline_mm"] == pytest.approx(32 - 19.5)
    m = measure(CaseInputs("a", _blob(10, 30), _grid(), {}))
    assert m["crosses_midline"] and m["side"] == "midline"
    m = measure(CaseInputs("a", _blob(15, 21), _grid(), {}))  # 15..20 mm: within 2 mm of 19.5 on the left
    assert not m["crosses_midline"]
    # flipped x: the same voxels lie on the patient's right
    m = measure(CaseInputs("a", _blob(30, 35), _grid(direction=FLIP_X), {}))
    assert m["side"] == "right" and not m["crosses_midline"]
    assert m["centroid_lps_mm"][0] == pytest.approx(-32.0)
    # rotated: the file's y-index is the patient's right-left axis
    m = measure(CaseInputs("a", _blob(30, 35, axis=1), _grid(direction=ROTATED), {}))
    assert m["side"] == "right"
    assert m["largest_slices"]["axial"]["file_axis"] == "Z"
    assert m["largest_slices"]["sagittal"]["file_axis"] == "Y"
    # midline from the brain mask (non-zero image voxels x 10..39 -> centre 24.5 mm)
    image = np.zeros((10, 40, 40), np.float32)
    image[:, :, 10:40] = 1.0
    m = measure(CaseInputs("a", _blob(26, 30), _grid(), {"T1c": image}))
    assert m["midline"] == {"x_mm": 24.5, "from": "brain mask", "margin_mm": 2.0}
    assert m["side"] == "left"


def test_lps_view_maps_slices_back_to_the_file():
    view = LPSView.of(FLIP_X, (1.0, 2.0, 3.0), (5, 6, 7))
    assert view.axes == (0, 1, 2) and view.flip == (False, False, True) and view.spacing == (3.0, 2.0, 1.0)
    assert view.file_index("sagittal", 0) == 6 and view.file_index("axial", 2) == 2
    array = np.arange(5 * 6 * 7).reshape(5, 6, 7)
    assert view.apply(array)[1, 2, 0] == array[1, 2, 6]


# ---------------------------------------------------------------------------------------- synthetic files


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> Path:
    """Two synthetic cases in nnU-Net layout: pred/CASE.nii.gz, images/CASE_000{0..3}.nii.gz, labels/."""
    from nnunet_diffrefine.data.synth import SynthConfig, generate_case, write_nifti

    root = tmp_path_factory.mktemp("report_cases")
    for sub in ("pred", "images", "labels"):
        (root / sub).mkdir()
    for index in range(2):
        case = generate_case(SynthConfig(shape=(48, 48, 48), spacing=(3.0, 3.0, 3.0), seed=2), index)
        name = f"Case{index:03d}"
        for c in range(4):
            write_nifti(case.images[c], case.spacing, case.origin, root / "images" / f"{name}_{c:04d}.nii.gz")
        write_nifti(case.labels, case.spacing, case.origin, root / "labels" / f"{name}.nii.gz")
        pred = case.labels.copy()
        pred[pred == 3] = 1 if index else 3  # a slightly different "prediction" for the second case
        write_nifti(pred, case.spacing, case.origin, root / "pred" / f"{name}.nii.gz")
    return root


def _single_args(cases: Path, out: Path, *extra: str) -> list[str]:
    images = [str(cases / "images" / f"Case000_{c:04d}.nii.gz") for c in range(4)]
    return ["report", "-s", str(cases / "pred" / "Case000.nii.gz"), "-i", *images, "-o", str(out), *extra]


def test_offline_report_is_complete_and_byte_identical(cases, tmp_path, capsys):
    first, second = tmp_path / "a", tmp_path / "b"
    assert main(_single_args(cases, first, "--offline")) == 0
    assert main(_single_args(cases, second, "--offline")) == 0
    names = sorted(p.name for p in first.iterdir())
    assert names == [
        "axial.png",
        "coronal.png",
        "measurements.json",
        "report.json",
        "report.md",
        "sagittal.png",
    ]
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    report = json.loads((first / "report.json").read_text())
    assert report["case_id"] == "Case000"  # derived from the segmentation's file name
    assert (
        report["source"] == {"path": "offline", "reason": "--offline given"} and report["llm_error"] is None
    )
    assert set(report["sections"]) == {"technique", "findings", "impression", "limitations"}
    assert report["flagged_statements"] == [] and "radiologist" in report["banner"]
    md = (first / "report.md").read_text()
    for heading in ("## Technique", "## Findings", "## Measurements", "## Impression", "## Limitations"):
        assert heading in md
    assert "AI-generated draft for review by a radiologist" in md and "Flagged statements" not in md
    m = json.loads((first / "measurements.json").read_text())
    assert check_sections(report["sections"], m) == []  # the template never trips the guard
    assert f"{m['volumes_cm3']['WT']:.2f} | cm³" in md
    # an existing report is kept unless --overwrite
    capsys.readouterr()
    assert main(_single_args(cases, first, "--offline")) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--overwrite" in err
    assert main(_single_args(cases, first, "--offline", "--overwrite")) == 0


def _pixel(png: np.ndarray, bbox: list[int], shape: tuple[int, int], row: int, col: int) -> np.ndarray:
    left, top, right, bottom = bbox
    x = left + (col + 0.5) / shape[1] * (right - left)
    y = top + (row + 0.5) / shape[0] * (bottom - top)
    return np.round(png[int(y), int(x), :3] * 255).astype(int)


@pytest.mark.parametrize("direction", [None, FLIP_X], ids=["identity", "flipped-x"])
def test_figures_show_the_overlay_colours_where_the_labels_are(tmp_path, direction):
    seg = np.zeros((12, 40, 40), np.int16)
    seg[4:8, 5:15, 5:15] = 1
    seg[4:8, 5:15, 22:32] = 2
    seg[4:8, 22:32, 5:15] = 3
    rng = np.random.default_rng(0)
    images = [rng.uniform(100, 200, seg.shape).astype(np.float32) for _ in range(4)]
    spacing = (3.0, 0.5, 0.8)
    seg_file = _write(seg, tmp_path / "Figcase.nii.gz", spacing, direction)
    image_files = [
        str(_write(im, tmp_path / f"Figcase_{c:04d}.nii.gz", spacing, direction))
        for c, im in enumerate(images)
    ]
    out = tmp_path / "out"
    args = ["report", "-s", str(seg_file), "-i", *image_files, "--reference", str(seg_file), "-o", str(out)]
    assert main([*args, "--offline"]) == 0
    report = json.loads((out / "report.json").read_text())
    axial = next(f for f in report["figures"] if f["plane"] == "axial")
    assert axial["file_index"] == 4 and [p["labels"] for p in axial["panels"]].count("reference") == 2
    png = mpimg.imread(out / "axial.png")
    assert png.shape[:2] == tuple(axial["size_px"][::-1])
    # radiological display: patient's right on the image left. With identity direction the file's
    # +x (patient left) runs to the image right; with x flipped the file's columns are mirrored.
    col = (lambda c: c) if direction is None else (lambda c: 39 - c)
    for panel in axial["panels"]:  # T1c columns (no diameter lines), prediction and reference rows
        if panel["image"] != "T1c":
            continue
        left, top, right, bottom = panel["bbox_px"]
        assert (bottom - top) / (right - left) == pytest.approx(
            20.0 / 32.0, abs=0.01
        )  # 40 x 0.5 by 40 x 0.8 mm
        r, g, b = _pixel(png, panel["bbox_px"], (40, 40), 10, col(10))  # NC: red
        assert r - max(g, b) > 100
        r, g, b = _pixel(png, panel["bbox_px"], (40, 40), 10, col(27))  # ED: green
        assert g - max(r, b) > 100
        r, g, b = _pixel(png, panel["bbox_px"], (40, 40), 27, col(10))  # ET: yellow
        assert min(r, g) - b > 100
        grey = _pixel(png, panel["bbox_px"], (40, 40), 27, col(27))  # unlabelled: grey
        assert grey.max() - grey.min() <= 3
    for plane in ("coronal", "sagittal"):
        assert mpimg.imread(out / f"{plane}.png").ndim == 3


# ---------------------------------------------------------------------------------------- LLM path


class _ChatHandler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's name)
        state = self.server.state
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        headers = {k.lower(): v for k, v in self.headers.items()}
        state["requests"].append({"path": self.path, "headers": headers, "body": body})
        if self.path != "/v1/chat/completions":
            status, payload = 404, {"error": {"message": "not found"}}
        elif state["mode"] == "500":
            status, payload = (
                500,
                {"error": {"message": f"internal error with key {API_KEY}", "type": "server_error"}},
            )
        elif state["mode"] == "429":
            status, payload = 429, {"error": {"message": "slow down", "type": "rate_limit"}}
        elif state["mode"] == "garbage":
            status, payload = 200, {"unexpected": True}
        else:
            if state["mode"] == "sleep":
                time.sleep(3)
            status = 200
            payload = {
                "id": "chatcmpl-test",
                "object": "chat.completion",
                "created": 0,
                "model": json.loads(body)["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": state["reply"]},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client gave up (time-out test)
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def chat_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ChatHandler)
    server.daemon_threads = True
    server.state = {"mode": "good", "reply": "", "requests": []}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1", server.state
    server.shutdown()
    server.server_close()


def _llm_args(cases: Path, out: Path, base_url: str, *extra: str) -> list[str]:
    return _single_args(
        cases,
        out,
        "--base-url",
        base_url,
        "--model",
        MODEL,
        "--api-key-env",
        KEY_ENV,
        "--max-retries",
        "0",
        *extra,
    )


def _assert_no_key(out: Path, *texts: str) -> None:
    for path in out.rglob("*"):
        if path.is_file():
            assert API_KEY.encode() not in path.read_bytes(), path
            assert API_KEY[:12].encode() not in path.read_bytes(), path
    for text in texts:
        assert API_KEY not in text


def _measured(cases: Path) -> dict:
    return measure(load_case(cases / "pred" / "Case000.nii.gz", case_id="Case000"))


def test_llm_reply_with_matching_numbers_is_used_without_flags(cases, tmp_path, chat_server, capsys):
    base_url, state = chat_server
    m = _measured(cases)
    v, axial = m["volumes_cm3"], m["largest_slices"]["axial"]
    findings = (
        f"The whole tumor measures {v['WT']:.1f} cm³, with enhancing tumor of {v['ET']:.1f} mL and edema of "
        f"{v['ED']:.1f} cm³. On axial slice {axial['file_index']} it measures {axial['long_diameter_mm'] / 10:.2f} x "
        f"{axial['perpendicular_diameter_mm'] / 10:.2f} cm. Enhancing tumor forms "
        f"{100 * m['proportions']['ET/TC']:.0f}% of the tumor core."
    )
    state["reply"] = (
        "```json\n"
        + json.dumps(
            {
                "technique": "Automatic segmentation of T1n, T1c, T2w and T2-FLAIR (3D).",
                "findings": findings,
                "impression": f"{m['side'].capitalize()} hemispheric tumor with enhancement.",
                "limitations": "Segmentation errors carry over into the measurements.",
            }
        )
        + "\n```"
    )
    out = tmp_path / "llm"
    assert main(_llm_args(cases, out, base_url)) == 0
    captured = capsys.readouterr()
    report = json.loads((out / "report.json").read_text())
    assert report["source"]["path"] == "llm" and report["source"]["model"] == MODEL
    assert report["llm_error"] is None and report["flagged_statements"] == []
    assert report["sections"]["findings"] == findings
    assert report["sections"]["limitations"].startswith("Segmentation errors carry over")
    assert "⚠ findings" not in (out / "report.md").read_text()
    # what went over the wire: one request, temperature 0, the key only in the header, the figures as
    # data URLs, no file names or paths
    (request,) = state["requests"]
    assert request["headers"]["authorization"] == f"Bearer {API_KEY}"
    body = json.loads(request["body"])
    assert body["model"] == MODEL and body["temperature"] == 0
    parts = body["messages"][1]["content"]
    urls = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]
    assert len(urls) == 3 and all(u.startswith("data:image/png;base64,") for u in urls)
    assert (
        API_KEY not in request["body"]
        and str(cases) not in request["body"]
        and "_0000" not in request["body"]
    )
    assert f"{v['WT']:.2f}" in parts[0]["text"]
    _assert_no_key(out, captured.out, captured.err)


def test_llm_reply_that_contradicts_the_measurements_is_rejected(cases, tmp_path, chat_server, capsys):
    base_url, state = chat_server
    m = _measured(cases)
    wrong = m["volumes_cm3"]["ED"] + 25.0
    state["reply"] = (
        "## Technique\nAutomatic segmentation.\n\n## Findings\n"
        f"The whole tumor measures {m['volumes_cm3']['WT']:.1f} cm³. Peritumoral edema measures {wrong:.1f} cm³. "
        "A satellite lesion of 4.2 cm is seen.\n\n## Impression\nTumor.\n\n## Limitations\nAutomatic."
    )
    out = tmp_path / "llm"
    assert main(_llm_args(cases, out, base_url, "--no-images")) == 0  # a warning, as for a failed request
    err = capsys.readouterr().err
    assert "warning" in err and "contradicts the measurements in 3 statement(s)" in err
    report = json.loads((out / "report.json").read_text())
    assert report["source"]["path"] == "offline" and report["source"]["images_sent"] is False
    assert report["source"]["reason"] == "the LLM reply contradicted the measurements"
    assert report["sections"] == offline_sections(json.loads((out / "measurements.json").read_text()))
    assert report["flagged_statements"] == []
    draft = report["rejected_draft"]
    assert draft["model"] == MODEL and draft["sections"]["findings"].startswith("The whole tumor measures")
    bad = draft["contradicted_statements"]
    assert [f["statement"] for f in bad] == [f"{wrong:.1f} cm³", "satellite lesion", "4.2 cm"]
    assert all(f["section"] == "findings" and f["status"] == "contradicted" for f in bad)
    assert bad[0]["reason"].startswith("contradicts the measured ED volume")
    assert bad[0]["sentence"] == f"Peritumoral edema measures {wrong:.1f} cm³."
    assert "lesion(s) were segmented" in bad[1]["reason"]
    md = (out / "report.md").read_text()
    assert "## Rejected draft" in md and f"Peritumoral edema measures {wrong:.1f} cm³. ⚠" in md
    assert "attached below as a rejected draft" in md
    # the report's own text and table hold our numbers, not the model's
    assert f"| {m['volumes_cm3']['ED']:.2f} | cm³ |" in md
    assert isinstance(json.loads(state["requests"][0]["body"])["messages"][1]["content"], str)


def test_llm_reply_with_unverifiable_statements_is_kept_and_flagged(cases, tmp_path, chat_server):
    base_url, state = chat_server
    m = _measured(cases)
    state["reply"] = json.dumps(
        {
            "findings": f"Whole tumor volume {m['volumes_cm3']['WT']:.2f} cm³ in the left frontal lobe. "
            "There is no midline shift.",
            "impression": "Left-sided tumor, to be reviewed.",
        }
    )
    out = tmp_path / "llm"
    assert main(_llm_args(cases, out, base_url, "--no-images")) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["source"]["path"] == "llm" and report["rejected_draft"] is None
    flags = report["flagged_statements"]
    assert [(f["statement"], f["status"]) for f in flags] == [
        ("frontal lobe", "unverifiable"),
        ("midline shift", "unverifiable"),
    ]
    md = (out / "report.md").read_text()
    assert "## Flagged statements" in md and "left frontal lobe. ⚠" in md and "## Rejected draft" not in md
    # every statement with its verdict: the numbers and the side are verified, the lobe and shift are not
    checked = {(f["statement"], f["status"]) for f in report["checked_statements"]}
    assert {(f"{m['volumes_cm3']['WT']:.2f} cm³", "verified"), ("Left-sided", "verified")} <= checked
    assert ("frontal lobe", "unverifiable") in checked and ("midline shift", "unverifiable") in checked
    counts = report["statement_counts"]
    assert counts["unverifiable"] == 2 and counts["contradicted"] == 0 and counts["verified"] >= 3
    assert "## Statement check" in md and "✓ verified: findings:" in md and "⚠ unverifiable: findings:" in md


@pytest.mark.parametrize("failure", ["500", "429", "garbage", "closed port", "timeout"])
def test_llm_failures_fall_back_to_the_offline_report(cases, tmp_path, chat_server, capsys, failure):
    base_url, state = chat_server
    extra: tuple[str, ...] = ()
    if failure in ("500", "429", "garbage"):
        state["mode"] = failure
    elif failure == "closed port":
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base_url = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    else:
        state["mode"] = "sleep"
        extra = ("--timeout", "0.5")
    out = tmp_path / "fallback"
    start = time.monotonic()
    assert main(_llm_args(cases, out, base_url, *extra)) == 0
    assert time.monotonic() - start < 20
    captured = capsys.readouterr()
    report = json.loads((out / "report.json").read_text())
    assert report["source"]["path"] == "offline" and report["source"]["reason"] == "the LLM request failed"
    expected = {
        "500": "HTTP 500",
        "429": "rate-limited the request (HTTP 429)",
        "garbage": "returned an empty reply",
        "closed port": "could not connect",
        "timeout": "within 0.5 s (--timeout, all attempts together); 1 attempt: no answer in",
    }[failure]
    assert expected in report["llm_error"]
    assert captured.err.count("\n") == 1 and expected in captured.err and "offline report" in captured.err
    m = json.loads((out / "measurements.json").read_text())
    assert report["sections"] == offline_sections(m)
    assert "LLM error" in (out / "report.md").read_text()
    _assert_no_key(out, captured.out, captured.err)
    if failure == "500":
        assert "[redacted]" in report["llm_error"]


def test_reply_parsing_is_robust():
    assert parse_reply('Here you go: {"Findings": "x", "impression": ["a", "b"]} Thanks.') == {
        "findings": "x",
        "impression": "a\nb",
    }
    assert parse_reply("**Technique:** t\n**Findings:**\nf1\nf2\n### Impression\ni")["findings"] == "f1\nf2"
    with pytest.raises(ReplyFormatError):
        parse_reply("I cannot help with that.")


def test_guard_units_and_rounding():
    m = measure(CaseInputs("box", _box_case(), _grid(SPACING), {}))  # WT 1.2 cm³, long 18.87 mm, ET/TC 33.3 %
    ok = {
        "findings": "Whole tumor 1.2 mL (1200 mm³), 1.89 cm x 11.8 mm; ET forms 33% of TC. T1c 3D 26-connected, 1 lesion."
    }
    assert check_sections(ok, m) == []
    bad = {
        "impression": "Whole tumor 2.4 cm³.\nEdema 1.2 cm³ of 19 cm length.\nThere are 2 separate lesions."
    }
    flags = check_sections(bad, m)
    assert [(f.statement, f.status, f.reason) for f in flags] == [
        ("2.4 cm³", "contradicted", "contradicts the measured WT volume 1.20 cm³"),
        ("1.2 cm³", "contradicted", "contradicts the measured ED volume 1.14 cm³"),
        ("19 cm", "contradicted", "contradicts the measured bidimensional diameter 18.9 or 11.8 mm"),
        ("2 separate lesions", "contradicted", "claims 2 lesion(s); 1 lesion(s) were segmented"),
    ]
    assert [n.text for n in numbers_in("45 x 30 mm in BraTS 2023")] == ["45 mm", "30 mm"]


# ---------------------------------------------------------------------------------------- batch and CLI


def test_batch_mode_writes_one_folder_per_case(cases, tmp_path, capsys):
    out = tmp_path / "batch"
    args = [
        "report",
        "--pred-folder",
        str(cases / "pred"),
        "--images-folder",
        str(cases / "images"),
        "--reference-folder",
        str(cases / "labels"),
        "-o",
        str(out),
        "--offline",
        "-np",
        "2",
    ]
    assert main(args) == 0
    assert "wrote 2 reports" in capsys.readouterr().out
    index = json.loads((out / "reports.json").read_text())
    assert [c["case_id"] for c in index["cases"]] == ["Case000", "Case001"]
    assert all(c["source"] == "offline" for c in index["cases"])
    for case in ("Case000", "Case001"):
        report = json.loads((out / case / "report.json").read_text())
        assert report["case_id"] == case and "reference_comparison" in report
    dice = json.loads((out / "Case001" / "measurements.json").read_text())["reference"]["dice"]
    assert dice["WT"] == 1.0 and dice["ET"] == 0.0  # the second prediction relabelled ET as NC
    before = (out / "Case000" / "report.md").stat().st_mtime_ns
    capsys.readouterr()
    assert main(args) == 0  # a re-run skips the finished cases
    assert "2 case(s) already reported, skipped" in capsys.readouterr().err
    assert (out / "Case000" / "report.md").stat().st_mtime_ns == before
    assert [c["case_id"] for c in json.loads((out / "reports.json").read_text())["cases"]] == [
        "Case000",
        "Case001",
    ]
    (out / "Case001" / "report.json").unlink()  # a case folder holding other files is refused
    assert main(args) == 1 and "holds files that are not a report" in capsys.readouterr().err
    shutil.rmtree(out / "Case001")  # a case not reported yet is done, the finished one skipped
    assert main(args) == 0 and (out / "Case001" / "report.json").is_file()
    assert (out / "Case000" / "report.md").stat().st_mtime_ns == before
    assert main([*args, "--overwrite"]) == 0 and (out / "Case000" / "report.md").stat().st_mtime_ns != before


def test_images_in_the_wrong_order_are_refused_unless_told(cases, tmp_path, capsys):
    images = [str(cases / "images" / f"Case000_{c:04d}.nii.gz") for c in range(4)]
    seg = ["report", "-s", str(cases / "pred" / "Case000.nii.gz"), "--offline"]
    swapped = [*seg, "-i", images[1], images[0], *images[2:], "-o", str(tmp_path / "rep")]
    capsys.readouterr()
    assert main(swapped) == 1
    err = capsys.readouterr().err
    assert (
        "is channel 1, given as image 1" in err and err.count("\n") == 1 and not (tmp_path / "rep").exists()
    )
    assert main([*swapped, "--any-image-order"]) == 0
    dataset = tmp_path / "dataset.json"
    dataset.write_text(json.dumps({"channel_names": {"0": "T1n", "1": "T2w", "2": "T1c", "3": "FLAIR"}}))
    capsys.readouterr()
    assert main([*seg, "-i", *images, "-o", str(tmp_path / "rep2"), "-djfile", str(dataset)]) == 1
    assert "dataset.json channel 1 is 'T2w', the report expects T1c" in capsys.readouterr().err


def test_cli_errors_are_one_line(cases, tmp_path, capsys):
    seg = np.zeros((6, 8, 8), np.int16)
    seg[2, 2, 2] = 4
    bad = _write(seg, tmp_path / "bad.nii.gz")
    small = [_write(np.zeros((6, 8, 9), np.float32), tmp_path / f"small_{c:04d}.nii.gz") for c in range(4)]
    runs = {
        "missing": (
            ["report", "-s", str(tmp_path / "nope.nii.gz"), "-o", str(tmp_path / "o1")],
            "nope.nii.gz",
        ),
        "label": (["report", "-s", str(bad), "-o", str(tmp_path / "o2")], "unknown label values [4]"),
        "geometry": (
            [
                "report",
                "-s",
                str(_write(np.zeros((6, 8, 8), np.int16), tmp_path / "ok.nii.gz")),
                "-i",
                *map(str, small),
                "-o",
                str(tmp_path / "o3"),
            ],
            "small_0000.nii.gz: the T1n image's size differs",
        ),
        "count": (
            _single_args(cases, tmp_path / "o4")[:3] + ["-i", str(small[0]), "-o", str(tmp_path / "o4")],
            "or none, got 1",
        ),
        "mode": (["report", "-o", str(tmp_path / "o5")], "give either -s SEG"),
    }
    for name, (args, expected) in runs.items():
        assert main(args) == 1, name
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and expected in err and "Traceback" not in err, (name, err)
        assert not any(p.name.startswith(("o", ".o")) for p in tmp_path.iterdir() if p.is_dir()), name
