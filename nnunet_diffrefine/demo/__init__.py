"""The end-to-end CPU demo: every stage of the pipeline on a synthetic BraTS-like dataset."""
