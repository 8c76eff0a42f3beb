"""The report's check of the model's reply, privacy of the request and the overall time-out (issue 14).

Every reply comes from a fake OpenAI-compatible server on 127.0.0.1 and goes through the real
``nnunet-diffrefine report`` command: wrong replies of many kinds must be rejected (the offline
report written, the reply attached as a rejected draft), correct replies phrased in several ways must
pass without a flag, the request must carry nothing identifying, and a hanging endpoint must not
block longer than ``--timeout``.
"""

from __future__ import annotations

import base64
import json
import os
import re
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from nnunet_diffrefine.cli.main import main
from nnunet_diffrefine.report.facts import cm3, mm, pct
from nnunet_diffrefine.report.inputs import load_case
from nnunet_diffrefine.report.measurements import measure
from nnunet_diffrefine.report.offline import offline_sections
from nnunet_diffrefine.report.privacy import SECRET_ENV

API_KEY = "sk-test-guard-5e4d3c2b1a09"
KEY_ENV = "DIFFREFINE_TEST_GUARD_KEY"
MODEL = "guard-model"
PATIENT = "Doe_John_19700101_MRN12345"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "DIFFREFINE_REPORT_MODEL", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.delenv("ALL_PROXY", raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv(KEY_ENV, API_KEY)
    monkeypatch.setenv(SECRET_ENV, str(tmp_path / "secret" / "pseudonym.key"))


# ---------------------------------------------------------------------------------------- cases

SPACING = (2.0, 1.0, 1.0)  # z, y, x mm; x index 0..63, the midline (image centre) at x = 31.5 mm


def _left() -> np.ndarray:
    """One lesion in the patient's left (+x), not crossing the midline; NC, ED and ET present."""
    seg = np.zeros((20, 48, 64), np.int16)
    seg[4:14, 10:34, 40:58] = 2
    seg[6:12, 14:26, 44:52] = 1
    seg[6:12, 26:30, 44:54] = 3
    return seg


def _right() -> np.ndarray:
    """Two lesions on the right, no ET."""
    seg = np.zeros((20, 48, 64), np.int16)
    seg[4:14, 10:30, 6:22] = 2
    seg[6:10, 14:22, 8:16] = 1
    seg[15:18, 36:42, 8:14] = 2
    return seg


def _crossing() -> np.ndarray:
    """Centred on the left, crossing the midline."""
    seg = np.zeros((20, 48, 64), np.int16)
    seg[4:14, 10:34, 24:50] = 2
    seg[6:12, 14:26, 36:44] = 1
    seg[6:12, 26:30, 36:46] = 3
    return seg


def _write(array: np.ndarray, path: Path, metadata: bool = False) -> Path:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing([float(s) for s in SPACING[::-1]])
    if metadata:
        image.SetOrigin((123.456, -78.901, 42.424))
        image.SetMetaData("aux_file", "Doe^John MRN12345")  # NIfTI keeps 23 characters
    sitk.WriteImage(image, str(path), useCompression=True)
    return path


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> dict[str, tuple[Path, dict]]:
    root = tmp_path_factory.mktemp("guard_cases")
    out = {}
    for name, make in (("L", _left), ("R", _right), ("X", _crossing)):
        seg = _write(make(), root / f"{name}.nii.gz")
        out[name] = (seg, measure(load_case(seg)))
    m = {name: m for name, (_, m) in out.items()}
    assert (m["L"]["side"], m["L"]["crosses_midline"], m["L"]["lesions"]["count"]) == ("left", False, 1)
    assert (m["R"]["side"], m["R"]["crosses_midline"], m["R"]["lesions"]["count"]) == ("right", False, 2)
    assert m["R"]["volumes_cm3"]["ET"] == 0.0
    assert (m["X"]["side"], m["X"]["crosses_midline"]) == ("left", True)
    return out


def _shown(m: dict) -> dict[str, str]:
    """The measurements as the prompt shows them, for building replies."""
    v, a, p = m["volumes_cm3"], m["largest_slices"]["axial"], m["proportions"]
    shown = {k: cm3(x) for k, x in v.items()}
    shown |= {k: pct(x) for k, x in p.items()}
    shown |= {
        "long": mm(a["long_diameter_mm"]),
        "perp": mm(a["perpendicular_diameter_mm"]),
        "area": mm(a["area_mm2"]),
        "dist": mm(m["centroid_offset_from_midline_mm"]),
        "slice": str(a["file_index"]),
    }
    return shown


# ---------------------------------------------------------------------------------------- fake server


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's name)
        state = self.server.state
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        state["requests"].append({"line": self.requestline, "headers": self.headers.items(), "body": body})
        mode = state["mode"]
        if mode == "hang" or (mode == "503-then-hang" and len(state["requests"]) > 1):
            state["release"].wait(10)
            return
        if mode == "503-then-hang":
            status, payload = 503, {"error": {"message": "overloaded"}}
        else:
            status = 200
            message = {"role": "assistant", "content": state["reply"]}
            payload = {
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": MODEL,
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            }
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def no_figures(monkeypatch):
    """The many runs of the reply checks skip drawing the PNGs (not sent with ``--no-images``)."""
    monkeypatch.setattr("nnunet_diffrefine.report.pipeline.render_figures", lambda case, m, folder: [])


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.state = {"mode": "reply", "reply": "", "requests": [], "release": threading.Event()}
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", httpd.state
    httpd.state["release"].set()
    httpd.shutdown()
    httpd.server_close()


def _reply(findings: str, impression: str = "Segmentation-derived findings, to be reviewed.") -> str:
    return json.dumps(
        {
            "technique": "Automatic segmentation of the tumor sub-regions.",
            "findings": findings,
            "impression": impression,
            "limitations": "Values come from an automatic segmentation whose errors carry over.",
        }
    )


def _run(seg: Path, out: Path, url: str, *extra: str) -> int:
    args = ["report", "-s", str(seg), "-o", str(out), "--base-url", url, "--model", MODEL]
    return main([*args, "--api-key-env", KEY_ENV, "--max-retries", "0", *extra])


# ---------------------------------------------------------------------------------------- wrong replies

WRONG: list[tuple[str, str, str, str]] = [
    # (kind, case, findings, quantity of a contradiction that must be listed)
    ("ET given the ED volume", "L", "Enhancing tumor (ET) volume {ED} cm³.", "ET volume"),
    ("WT given the TC volume", "L", "The whole tumor measures {TC} cm³.", "WT volume"),
    ("two volumes swapped", "L", "Edema {WT} cm³ and whole tumor {ED} cm³.", "ED volume"),
    (
        "swapped within a list",
        "L",
        "Volumes: WT {WT}, TC {TC}, ET {ED}, NC {NC} and ED {ET} cm³.",
        "ET volume",
    ),
    (
        "midline distance given the diameter",
        "L",
        "The centroid lies {long} mm from the midline.",
        "distance from the midline",
    ),
    (
        "diameters swapped",
        "L",
        "Longest diameter {perp} mm; perpendicular diameter {long} mm.",
        "longest diameter",
    ),
    ("volume in mm³ instead of cm³", "L", "Whole tumor volume {WT} mm³.", "WT volume"),
    ("diameter in cm instead of mm", "L", "The longest diameter is {long} cm.", "longest diameter"),
    ("decimal point shifted", "L", "Whole tumor volume {WT10} cm³.", "WT volume"),
    ("mL off by one", "L", "Peritumoral edema of {ED1} mL.", "ED volume"),
    ("volume in words", "L", "The whole tumor measures about twenty cubic centimetres.", "WT volume"),
    (
        "percentage of the wrong base",
        "L",
        "Enhancing tumor makes up {ET/TC} % of the whole tumor.",
        "ET/WT proportion",
    ),
    ("percentage of another region", "L", "ET/TC {NC/TC} %.", "ET/TC proportion"),
    (
        "percentage of a region it is not part of",
        "L",
        "Edema makes up {ED/WT} % of the tumor core.",
        "unbound",
    ),
    ("fraction in words", "L", "Two thirds of the tumor core is enhancing.", "ET/TC proportion"),
    ("wrong area", "L", "WT area {area2} mm² on that slice.", "axial WT area"),
    ("wrong slice", "L", "The largest extent is on axial slice {slice3}.", "axial slice index"),
    ("wrong side", "L", "The tumor lies in the right hemisphere.", "side"),
    ("wrong side, invented crossing", "L", "Right hemisphere, crosses the midline.", "midline crossing"),
    ("invented midline position", "L", "The tumor is centred on the midline.", "side"),
    ("crossing denied", "X", "The tumor does not cross the midline.", "midline crossing"),
    ("invented lesions", "L", "There are two separate lesions.", "number of lesions"),
    ("invented satellite lesion", "L", "A small satellite lesion is seen.", "number of lesions"),
    ("multifocal for one lesion", "L", "Multifocal tumor.", "number of lesions"),
    ("missed lesion", "R", "A solitary lesion in the right hemisphere.", "number of lesions"),
    ("lesion count in words", "R", "Three lesions are segmented.", "number of lesions"),
    ("no tumor claimed", "L", "No tumor is segmented.", "number of lesions"),
    ("missing sub-region claimed present", "R", "There is a thin enhancing rim.", "presence of ET"),
    ("missing sub-region given a volume", "R", "Enhancing tumor volume {NC} cm³.", "ET volume"),
    ("present sub-region denied", "L", "No necrosis is seen.", "presence of NC"),
    ("edema denied", "L", "There is no peritumoral edema.", "presence of ED"),
    # issue 23: diameters given as distances, lobes on the wrong side, descriptors on wrong numbers
    ("diameter given as the distance, cm", "L", "It is centred {longcm1} cm from the midline.", "midline"),
    ("distance given as a diameter pair", "L", "It measures {dist} x {perp} mm.", "longest diameter"),
    ("repeated diameter in a pair", "L", "The lesion measures {long} x {long} mm.", "perpendicular diameter"),
    ("lobe on the wrong side", "L", "Tumour in the right frontal lobe.", "side"),
    ("descriptor on the NC volume", "R", "Right-hemispheric non-enhancing tumor, {NC} cm³.", "lesion volume"),
    ("non-enhancing for an enhancing tumour", "L", "Left-hemispheric non-enhancing mass.", "presence of ET"),
    ("about, beyond its rounding", "L", "Whole tumour volume about {WTfar} mL.", "WT volume"),
]


def _values(m: dict) -> dict[str, str]:
    s = _shown(m)
    s["WT10"] = cm3(10 * m["volumes_cm3"]["WT"])
    s["ED1"] = f"{m['volumes_cm3']['ED'] + 1:.1f}"
    s["area2"] = mm(2 * m["largest_slices"]["axial"]["area_mm2"])
    s["slice3"] = str(m["largest_slices"]["axial"]["file_index"] + 3)
    s["longcm1"] = f"{m['largest_slices']['axial']['long_diameter_mm'] / 10:.1f}"
    s["WTfar"] = f"{10 * round(m['volumes_cm3']['WT'] / 10) + 5:.0f}"  # a 5: rounded to 5, not to 10
    return s


@pytest.mark.parametrize("kind, case, findings, quantity", WRONG, ids=[w[0] for w in WRONG])
def test_a_wrong_reply_is_rejected(
    cases, tmp_path, server, no_figures, capsys, kind, case, findings, quantity
):
    url, state = server
    seg, m = cases[case]
    text = _fill(findings, _values(m))
    state["reply"] = _reply(text)
    out = tmp_path / "out"
    assert _run(seg, out, url, "--no-images") == 0
    err = capsys.readouterr().err
    assert "warning" in err and "contradicts the measurements" in err and "rejected draft" in err
    report = json.loads((out / "report.json").read_text())
    assert report["source"]["path"] == "offline"
    assert report["source"]["reason"] == "the LLM reply contradicted the measurements"
    assert report["sections"] == offline_sections(m) and report["flagged_statements"] == []
    draft = report["rejected_draft"]
    assert draft["sections"]["findings"] == text
    bad = draft["contradicted_statements"]
    assert bad and all(f["status"] == "contradicted" for f in bad)
    assert any(quantity in f["quantity"] for f in bad), (kind, bad)
    assert draft["statement_counts"]["contradicted"] == len(bad)
    assert {f["status"] for f in draft["checked_statements"]} <= {"verified", "unverifiable", "contradicted"}
    md = (out / "report.md").read_text()
    assert (
        "## Rejected draft" in md and "⚠" in md and md.index("## Rejected draft") > md.index("## Impression")
    )


def test_the_adversarial_suite_is_large_enough():
    assert len({kind for kind, *_ in WRONG}) >= 35


# ---------------------------------------------------------------------------------------- correct replies

CORRECT: list[tuple[str, str, str]] = [
    (
        "json, abbreviations",
        "L",
        _reply(
            "Whole tumor (WT) {WT} cm³, of which edema (ED) {ED} cm³, necrotic core (NC) {NC} cm³ and enhancing "
            "tumor (ET) {ET} cm³; tumor core (TC) {TC} cm³. ET/TC {ET/TC} %, NC/TC {NC/TC} %, ED/WT {ED/WT} %. "
            "On axial slice {slice} the longest diameter is {long} mm and the perpendicular diameter {perp} mm.",
            "Left-hemispheric tumor that does not cross the midline.",
        ),
    ),
    (
        "markdown, other units",
        "L",
        "## Findings\nA single lesion in the left hemisphere, {dist} mm from the midline, confined to the left "
        "hemisphere. Whole tumour volume {WTml} mL ({WTmm3} mm³); peritumoral oedema {ED} cc. It measures "
        "{longcm} x {perpcm} cm on the axial slice of largest extent.\n\n## Impression\nUnifocal left-sided tumour "
        "with an enhancing component, necrosis and surrounding edema.",
    ),
    (
        "bullets, bases and words",
        "L",
        "**Findings:**\n- Number of lesions: 1\n- Enhancing tumor forms {ET/TC}% of the tumor core and {ETWT}% "
        "of the whole tumor.\n- Edema accounts for {ED/WT} percent of the whole tumor.\n- The enhancing fraction "
        "(ET/TC) is {ETfrac}.\n**Impression:** One lesion; there is no midline crossing.",
    ),
    (
        "two lesions, no ET",
        "R",
        _reply(
            "Two lesions ({L1} and {L2} cm³) in the right hemisphere, without enhancing tumor; the non-enhancing "
            "core measures {NC} cm³ and the edema {ED} cm³. The tumor does not cross the midline.",
            "Multifocal right-sided tumor with no enhancement.",
        ),
    ),
    (
        "crossing",
        "X",
        _reply(
            "The whole tumor ({WT} cm³) is centred in the left hemisphere, {dist} mm from the midline, and extends "
            "across the midline into the right hemisphere.",
            "Left-hemispheric tumor crossing the midline.",
        ),
    ),
    (  # issue 23: a diameter pair in a sentence that names the midline
        "pair beside the midline",
        "L",
        _reply(
            "Single lesion in the left hemisphere, not crossing the midline, {longcm1} x {perpcm1} cm on the "
            "largest axial slice."
        ),
    ),
    (  # issue 23: "non-enhancing" describing the whole lesion
        "non-enhancing lesion",
        "R",
        _reply(
            "Right-hemispheric non-enhancing tumor, {WT1} cm³.",
            "Right non-enhancing lesion of about {WTr} mL.",
        ),
    ),
    (
        "fenced json with prose, rounded",
        "L",
        "Here is the report:\n```json\n"
        + _reply(
            "The total tumor volume is approximately {WTr} cm³ and the enhancing tumor about {ETr} mL. "
            "The centroid is {distcm} cm to the left of the midline.",
            "Solitary left-sided lesion.",
        )
        + "\n```\nThanks.",
    ),
]


def _correct_values(m: dict) -> dict[str, str]:
    s = _shown(m)
    v, a = m["volumes_cm3"], m["largest_slices"]["axial"]
    s |= {
        "WTml": f"{v['WT']:.1f}",
        "WTmm3": f"{1000 * v['WT']:.0f}",
        "WTr": f"{v['WT']:.0f}",
        "ETr": f"{v['ET']:.1f}",
    }
    s |= {
        "longcm": f"{a['long_diameter_mm'] / 10:.2f}",
        "perpcm": f"{a['perpendicular_diameter_mm'] / 10:.2f}",
    }
    s |= {"distcm": f"{m['centroid_offset_from_midline_mm'] / 10:.1f}", "WT1": f"{v['WT']:.1f}"}
    s |= {
        "longcm1": f"{a['long_diameter_mm'] / 10:.1f}",
        "perpcm1": f"{a['perpendicular_diameter_mm'] / 10:.1f}",
    }
    if v["TC"] > 0:
        s |= {"ETWT": f"{100 * v['ET'] / v['WT']:.1f}", "ETfrac": f"{v['ET'] / v['TC']:.2f}"}
    lesions = m["lesions"]["volumes_cm3"]
    s |= {f"L{i + 1}": cm3(x) for i, x in enumerate(lesions)}
    return s


@pytest.mark.parametrize("name, case, reply", CORRECT, ids=[c[0] for c in CORRECT])
def test_a_correct_reply_is_used_without_flags(
    cases, tmp_path, server, no_figures, capsys, name, case, reply
):
    url, state = server
    seg, m = cases[case]
    state["reply"] = _fill(reply, _correct_values(m))
    out = tmp_path / "out"
    assert _run(seg, out, url, "--no-images") == 0
    captured = capsys.readouterr()
    report = json.loads((out / "report.json").read_text())
    assert report["source"]["path"] == "llm", report["rejected_draft"]
    assert report["flagged_statements"] == [] and report["rejected_draft"] is None
    assert "warning" not in captured.err and "flagged" not in captured.out
    checked = report["checked_statements"]
    assert checked and {f["status"] for f in checked} == {"verified"}  # each statement has its verdict
    assert report["statement_counts"] == {"verified": len(checked), "unverifiable": 0, "contradicted": 0}
    assert "## Statement check" in (tmp_path / "out" / "report.md").read_text()


def _fill(template: str, values: dict[str, str]) -> str:
    """``{NAME}`` placeholders replaced, JSON braces left alone."""
    return re.sub(r"\{([A-Za-z0-9/]+)\}", lambda match: values[match.group(1)], template)


# ---------------------------------------------------------------------------------------- privacy


def _png_chunks(data: bytes) -> list[bytes]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, i = [], 8
    while i < len(data):
        (length,) = struct.unpack(">I", data[i : i + 4])
        chunks.append(data[i + 4 : i + 8])
        i += 12 + length
    return chunks


def _sent(request: dict) -> tuple[str, dict, list[bytes]]:
    """The request as text with the images taken out, the facts sent, and the decoded images."""
    body = json.loads(request["body"])
    images = []
    for message in body["messages"]:
        if isinstance(message["content"], list):
            for part in message["content"]:
                if part["type"] == "image_url":
                    url = part["image_url"]["url"]
                    assert url.startswith("data:image/png;base64,")
                    images.append(base64.b64decode(url.split(",", 1)[1]))
                    part["image_url"]["url"] = "<image>"
    user = body["messages"][1]["content"]
    text = user if isinstance(user, str) else user[0]["text"]
    facts = json.loads(text[text.index("{") : text.rindex("}") + 1])
    headers = "\n".join(f"{k}: {v}" for k, v in request["headers"])
    return request["line"] + "\n" + headers + "\n" + json.dumps(body, ensure_ascii=False), facts, images


@pytest.fixture
def patient(tmp_path) -> tuple[Path, list[Path]]:
    """A case whose file names, folders and headers hold a patient's name, birth date and MRN."""
    folder = tmp_path / "Patients" / "Doe_John"
    folder.mkdir(parents=True)
    seg = _write(_left(), folder / f"{PATIENT}.nii.gz", metadata=True)
    rng = np.random.default_rng(0)
    images = [
        _write(
            rng.uniform(1, 2, _left().shape).astype(np.float32), folder / f"{PATIENT}_{c:04d}.nii.gz", True
        )
        for c in range(4)
    ]
    return seg, images


def test_nothing_identifying_is_sent_by_default(tmp_path, server, patient):
    url, state = server
    seg, images = patient
    state["reply"] = _reply("Segmented tumor.")
    out = tmp_path / "out"
    args = ["-i", *map(str, images)]
    assert _run(seg, out, url, *args) == 0
    (request,) = state["requests"]
    text, facts, pngs = _sent(request)
    forbidden = ["Doe", "John", "19700101", "MRN12345", PATIENT, "Patients", str(tmp_path), ".nii", "_0000"]
    forbidden += ["123.45", "78.90", "42.42", "aux_file"]
    for word in forbidden:
        assert word not in text, word
    assert len(pngs) == 3  # the figures, without text metadata chunks
    for png in pngs:
        assert not {b"tEXt", b"iTXt", b"zTXt", b"eXIf", b"tIME"} & set(_png_chunks(png))
    sent = facts["case_id"]
    assert re.fullmatch(r"case-[0-9a-f]{12}", sent)
    report = json.loads((out / "report.json").read_text())
    assert report["case_id"] == PATIENT and report["source"]["case_id_sent"] == sent  # kept locally only
    secret = Path(os.environ[SECRET_ENV])
    assert secret.is_file() and secret.stat().st_mode & 0o777 == 0o600
    # stable per case, different for another case, and not a function of the file name alone
    assert _run(seg, tmp_path / "again", url, *args) == 0
    assert _sent(state["requests"][1])[1]["case_id"] == sent
    assert _run(seg, tmp_path / "other", url, "--case-id", "Other") == 0
    assert _sent(state["requests"][2])[1]["case_id"] not in (sent, "Other")
    os.environ[SECRET_ENV] = str(tmp_path / "another.key")  # restored by the autouse fixture
    assert _run(seg, tmp_path / "elsewhere", url) == 0
    assert _sent(state["requests"][3])[1]["case_id"] != sent


def test_send_case_id_sends_the_case_id(tmp_path, server, patient):
    url, state = server
    seg, _ = patient
    state["reply"] = _reply("Segmented tumor.")
    assert _run(seg, tmp_path / "out", url, "--send-case-id") == 0
    text, facts, _ = _sent(state["requests"][0])
    assert facts["case_id"] == PATIENT
    assert str(tmp_path) not in text and ".nii" not in text  # still no path or file suffix


# ---------------------------------------------------------------------------------------- time-out


@pytest.mark.parametrize("mode", ["hang", "503-then-hang"])
def test_timeout_bounds_the_whole_wait(cases, tmp_path, server, no_figures, capsys, mode):
    url, state = server
    state["mode"] = mode
    seg, m = cases["L"]
    out = tmp_path / "out"
    args = ["report", "-s", str(seg), "-o", str(out), "--base-url", url, "--model", MODEL]
    start = time.monotonic()
    assert main([*args, "--api-key-env", KEY_ENV, "--timeout", "2", "--max-retries", "2", "--no-images"]) == 0
    elapsed = time.monotonic() - start
    assert elapsed < 5.5  # 2 s of waiting plus the report itself; 3 attempts of 2 s each take over 6 s
    err = capsys.readouterr().err
    assert "waiting for the LLM endpoint" in err and "of 2 s (attempt" in err  # progress while waiting
    expected = {
        "hang": "within 2 s (--timeout, all attempts together); 1 attempt: no answer in",
        "503-then-hang": "within 2 s (--timeout, all attempts together); 2 attempts: HTTP 503, no answer in",
    }[mode]
    assert expected in err and "wrote the offline report instead" in err
    assert len(state["requests"]) == (1 if mode == "hang" else 2)
    report = json.loads((out / "report.json").read_text())
    assert report["source"]["reason"] == "the LLM request failed" and expected in report["llm_error"]
    assert report["sections"] == offline_sections(m)
