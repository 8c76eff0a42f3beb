"""Radiology-style draft reports of a segmented case (seed paper 000, sections 3.5 and 5.3).

Pipeline, one module per step:

- :mod:`.vocabulary` holds the words of the case's label convention (sub-regions, names, proportions,
  colours; BraTS 2023 by default, 2024 GLI / PED / MEN-RT from the dataset.json);
- :mod:`.inputs` reads and checks the segmentation, images and reference (:func:`load_case`);
- :mod:`.measurements` measures volumes, proportions, lesions, bidimensional diameters
  (:mod:`.diameters`), side and midline crossing (:func:`measure`), in the patient's LPS axes
  (:mod:`.orientation`);
- :mod:`.figures` draws the slices of largest extent with colour-coded overlays;
- :mod:`.facts` rounds the measurements for display and is the whitelist of what goes into a prompt;
- :mod:`.prompt` builds the chat-completions messages and parses the reply; :mod:`.llm` sends them;
- :mod:`.offline` writes the deterministic template text (no endpoint, ``--offline`` or a failure);
- :mod:`.guard` checks every number and claim of the model's text against the measured quantity it is
  stated for (:mod:`.text`, :mod:`.numbers`, :mod:`.binding`, :mod:`.quantities`, :mod:`.claims`);
  :mod:`.privacy` makes the pseudonym sent instead of the case id;
- :mod:`.render` writes report.json and report.md; :mod:`.pipeline` ties one case together
  (:func:`write_report`) and :mod:`.batch` runs a folder (:func:`report_folder`).
"""

from nnunet_diffrefine.report.batch import report_folder
from nnunet_diffrefine.report.inputs import CaseInputs, load_case
from nnunet_diffrefine.report.llm import LLMSettings, settings_from
from nnunet_diffrefine.report.measurements import measure
from nnunet_diffrefine.report.pipeline import ReportOutcome, write_report

__all__ = [
    "CaseInputs",
    "LLMSettings",
    "ReportOutcome",
    "load_case",
    "measure",
    "report_folder",
    "settings_from",
    "write_report",
]
