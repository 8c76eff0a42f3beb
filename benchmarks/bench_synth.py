"""Speed of ``nnunet-diffrefine synth``: target 20 cases at 96^3 in under a minute on 2 cores.

Usage: python benchmarks/bench_synth.py [--cases 20] [--shape 96] [-np 2] [-o benchmarks/results/synth_speed.json]
Writes the measured numbers (seconds, cases per second, the machine) to the output JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from _setup import machine, save_json

from nnunet_diffrefine.data.synth import SynthConfig, synthesize_dataset
from nnunet_diffrefine.data.template import load_mni_template


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--shape", type=int, default=96)
    parser.add_argument("-np", type=int, default=2)
    parser.add_argument("-o", default=str(Path(__file__).parent / "results" / "synth_speed.json"))
    args = parser.parse_args()

    start = time.perf_counter()
    load_mni_template()
    template_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        folder = synthesize_dataset(
            tmp,
            999,
            "Bench",
            args.cases,
            0,
            SynthConfig(shape=(args.shape,) * 3, seed=0),
            num_processes=args.np,
            progress=False,
        )
        total_s = time.perf_counter() - start
        size_mb = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6
    result = {
        "benchmark": "synth speed",
        "cases": args.cases,
        "shape": [args.shape] * 3,
        "processes": args.np,
        "template_load_s": round(template_s, 2),
        "total_s": round(total_s, 2),
        "seconds_per_case": round(total_s / args.cases, 3),
        "dataset_mb": round(size_mb, 1),
        "target": "20 cases at 96^3 in under 60 s on 2 cores",
        "meets_target": bool(total_s < 60.0) if (args.cases, args.shape) == (20, 96) else None,
        "machine": machine(),
    }
    save_json(result, Path(args.o))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
