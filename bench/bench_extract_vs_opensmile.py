"""Feature extraction cost of the default model against openSMILE's standard sets (issue 15's speed row).

Per file, CPU seconds (`time.process_time`, one thread: BLAS/OpenMP limited to one) of decode + resample +
features, over the same files, each extractor in its own fresh process, in rotating order per repetition:

* `voice_audio` (the default model's set): aei_batch's `decode_audio` + the feature set, as scoring runs it;
* openSMILE `ComParE_2016` and `eGeMAPSv02` functionals (`opensmile.Smile.process_file`: its own decoding).

openSMILE is a measuring stick only (research-only licence): it is never a dependency of the project. Give
the Python of an environment that has it with `--osm-python` (e.g. /work/wt/osm-venv/bin/python, see
bench/opensmile_features.py); without it only `voice_audio` is measured.

    python bench/bench_extract_vs_opensmile.py --osm-python /work/wt/osm-venv/bin/python --files 30 --reps 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RAVDESS, REPO, print_facts, print_table, single_thread_env  # noqa: E402

_OURS = """
import json, sys, time
from pathlib import Path
from aei_batch.decode.audio import ANALYSIS_SR, decode_audio
from aei_batch.features import get_feature_set
files = json.loads(sys.argv[1]); fs = get_feature_set(sys.argv[2])
fs.extract(decode_audio(Path(files[0]).read_bytes(), files[0], sr=ANALYSIS_SR).y, ANALYSIS_SR)  # warm-up
t0 = time.process_time()
for f in files:
    clip = decode_audio(Path(f).read_bytes(), f, sr=ANALYSIS_SR)
    fs.extract(clip.y, clip.sr)
print(json.dumps({"cpu_per_file": (time.process_time() - t0) / len(files)}))
"""

_OSM = """
import json, sys, time
import opensmile
files = json.loads(sys.argv[1])
smile = opensmile.Smile(feature_set=getattr(opensmile.FeatureSet, sys.argv[2]),
                        feature_level=opensmile.FeatureLevel.Functionals)
smile.process_file(files[0])  # warm-up
t0 = time.process_time()
for f in files:
    smile.process_file(f)
print(json.dumps({"cpu_per_file": (time.process_time() - t0) / len(files)}))
"""


def run(python: str, code: str, files: list[str], what: str) -> float:
    out = subprocess.run(
        [python, "-c", code, json.dumps(files), what],
        capture_output=True,
        text=True,
        env=single_thread_env(),
        cwd=str(REPO),
        timeout=1800,
    )
    if out.returncode != 0:
        raise SystemExit(f"{what} failed: {out.stderr[-2000:]}")
    return float(json.loads(out.stdout.strip().splitlines()[-1])["cpu_per_file"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=RAVDESS)
    ap.add_argument("--files", type=int, default=30, help="files, evenly spaced over the sorted list")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--feature-set", default="voice_audio")
    ap.add_argument("--osm-python", default=None, help="a Python with opensmile installed (optional)")
    args = ap.parse_args()
    print_facts("bench_extract_vs_opensmile")
    files = sorted(str(p) for p in args.data.glob("Actor_*/*") if p.suffix.lower() in (".wav", ".flac"))
    if not files:
        raise SystemExit(f"no recordings under {args.data}")
    files = files[:: max(1, len(files) // args.files)][: args.files]
    runs: list[tuple[str, str, str, str]] = [(args.feature_set, sys.executable, _OURS, args.feature_set)]
    if args.osm_python and os.path.exists(args.osm_python):
        runs += [(s, args.osm_python, _OSM, s) for s in ("ComParE_2016", "eGeMAPSv02")]
    else:
        print("   openSMILE: no --osm-python given (or not found): only the project's set is measured")
    cpu: dict[str, list[float]] = {name: [] for name, *_ in runs}
    for rep in range(args.reps):
        for name, python, code, what in runs[rep % len(runs) :] + runs[: rep % len(runs)]:
            cpu[name].append(run(python, code, files, what))
            print(f"   rep {rep} {name:14s} {cpu[name][-1] * 1e3:7.1f} ms CPU per file", flush=True)
    ours = statistics.median(cpu[args.feature_set])
    rows = [
        {
            "extractor": name,
            "ms CPU per file (median)": f"{statistics.median(v) * 1e3:.1f}",
            f"cost / {args.feature_set}": f"{statistics.median(v) / ours:.2f}",
        }
        for name, v in cpu.items()
    ]
    print_table(rows, f"decode + features, {len(files)} files, {args.reps} reps, one thread each")


if __name__ == "__main__":
    main()
