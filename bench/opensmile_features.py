"""Extract openSMILE functionals (ComParE_2016, eGeMAPSv02) for the RAVDESS files into a cache file.

openSMILE is a measuring stick only (research-only licence): run this with a Python that has it, in
its own environment, never the project's:

    python3.11 -m venv /work/wt/osm-venv && /work/wt/osm-venv/bin/pip install opensmile numpy
    /work/wt/osm-venv/bin/python bench/opensmile_features.py --out /work/wt/cache/opensmile.npz

bench/eval_audio_nested.py reads the cache and skips the openSMILE rows when it is absent. The file
holds X_<set> (files x features), uris, and seconds_<set> (wall time of the extraction, one process).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def main() -> int:
    import opensmile

    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/work/shared/datasets/ravdess-speech")
    ap.add_argument("--out", default="/work/wt/cache/opensmile.npz")
    ap.add_argument("--sets", default="ComParE_2016,eGeMAPSv02")
    a = ap.parse_args()
    files = sorted(
        os.path.join(r, f)
        for r, _, fs in os.walk(a.data)
        for f in fs
        if f.endswith((".wav", ".flac")) and len(f.split("-")) == 7
    )
    out: dict[str, np.ndarray] = {"uris": np.array(files)}
    for name in a.sets.split(","):
        smile = opensmile.Smile(
            feature_set=getattr(opensmile.FeatureSet, name), feature_level=opensmile.FeatureLevel.Functionals
        )
        t0 = time.perf_counter()
        rows = [smile.process_file(f).to_numpy()[0] for f in files]
        out[f"seconds_{name}"] = np.array(time.perf_counter() - t0)
        out[f"X_{name}"] = np.asarray(rows, dtype=np.float32)
        print(name, out[f"X_{name}"].shape, f"{float(out[f'seconds_{name}']):.0f}s", flush=True)
    np.savez_compressed(a.out, **out)  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
