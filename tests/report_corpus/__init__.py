"""Replies for the claim check of the report (issue 23): measurement sets and reply templates.

- :mod:`.cases`: the measurement sets, the issue's literal low-grade glioma and real BraTS 2018 cases
  measured at test time (never stored here);
- :mod:`.replies`: correct replies in radiology style, as templates filled from a set;
- :mod:`.wrong`: wrong replies, one wrong statement of a kind each.
"""
