"""Benchmark against stock nnU-Net: collect or run predictions, evaluate, tabulate and plot."""
