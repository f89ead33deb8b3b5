#!/usr/bin/env bash
# The CUDA checks in one run (at most 8 minutes: the steps' limits add up to 470 s), for a CUDA
# machine holding the repository and a Python with its requirements (its .venv by default):
#
#     tools/gpu_check.sh [OUT_DIR]                 # OUT_DIR defaults to $OUT
#     PYTHON=python3 tools/gpu_check.sh OUT_DIR    # a system Python with CUDA torch (a path or a command)
#
# 1. pytest -m cuda: the CUDA-only tests (fp16 + GradScaler("cuda"), the step and the float64
#    Gram matrix on the GPU, GPU evaluation against the CPU);
# 2. a short SFSC training on SyntheticReIDTiny with fp16 AMP on CUDA (tiny input, one epoch)
#    and its many-to-many evaluation with the torch backend on the GPU;
# 3. tools/bench_train.py on CUDA with fp16;
# 4. tools/bench_eval.py --scale market on CUDA.
#
# Writes OUT_DIR/gpu_check.json ({"passed", "steps": {name: {"passed", "rc", "seconds", ...}}})
# and each step's log under OUT_DIR/logs/. Exits 0 if every step passed, 1 if one failed, and 2
# (with a message, and gpu_check.json saying why) when there is no CUDA device or no .venv.
set -u

cd "$(dirname "$0")/.."
OUT_DIR=${1:-${OUT:-}}
if [ -z "$OUT_DIR" ]; then
    echo "usage: tools/gpu_check.sh OUT_DIR (or set \$OUT)" >&2
    exit 2
fi
mkdir -p "$OUT_DIR/logs"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
PY=${PYTHON:-.venv/bin/python}

refuse() {  # message: write it as the result, say it, exit 2
    printf '{"passed": false, "cuda": false, "message": "%s"}\n' "$1" >"$OUT_DIR/gpu_check.json"
    echo "gpu_check: $1" >&2
    exit 2
}

[ -x "$PY" ] || command -v "$PY" >/dev/null \
    || refuse "no Python at $PY: carry the repository's .venv (or set PYTHON to a path or command)"
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 3)" 2>/dev/null \
    || refuse "no CUDA device visible to torch ($("$PY" -c 'import torch; print(torch.__version__)' 2>&1 | tail -1)); nothing was run"

export PYTHONPATH="$PWD/projects/SFSC${PYTHONPATH:+:$PYTHONPATH}"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export FASTREID_DATASETS="$WORK/datasets"  # the synthetic set is generated here, not returned
STEPS="$OUT_DIR/steps.tsv"
: >"$STEPS"

step() {  # name limit_seconds command...: run it with a time limit, record rc and seconds
    local name=$1 limit=$2
    shift 2
    echo "gpu_check: $name (limit ${limit}s)" >&2
    local start rc
    start=$(date +%s%N)
    timeout --kill-after=10 "$limit" "$@" >"$OUT_DIR/logs/$name.log" 2>&1
    rc=$?
    printf '%s\t%s\t%s\n' "$name" "$rc" "$(( ($(date +%s%N) - start) / 1000000 ))" >>"$STEPS"
}

step cuda_tests 120 "$PY" -m pytest -q -m cuda -rs -p no:cacheprovider \
    --junitxml="$OUT_DIR/cuda_tests.xml" tests/test_cuda.py

step train_amp 150 "$PY" tools/train_net.py --config-file configs/Synthetic/sfsc_R18.yml \
    DATASETS.NAMES '("SyntheticReIDTiny",)' DATASETS.TESTS '("SyntheticReIDTiny",)' \
    INPUT.SIZE_TRAIN '[64,32]' INPUT.SIZE_TEST '[64,32]' SOLVER.IMS_PER_BATCH 32 \
    SOLVER.MAX_EPOCH 1 SOLVER.STEPS '[1]' SOLVER.WARMUP_ITERS 2 SOLVER.CHECKPOINT_PERIOD 1 \
    TEST.EVAL_PERIOD 1 SOLVER.AMP.ENABLED True SOLVER.AMP.DTYPE float16 MODEL.DEVICE cuda \
    TEST.COMPAT.BACKEND torch DATALOADER.NUM_WORKERS 2 SFSC.LOG_PERIOD 1 \
    OUTPUT_DIR "$OUT_DIR/train_amp"

step bench_train 80 "$PY" tools/bench_train.py --device cuda --amp float16 --iters 3

step bench_eval 120 "$PY" tools/bench_eval.py --scale market --backend torch \
    --fastreid python --python-queries 100 --fastreid-pairs 4

"$PY" - "$OUT_DIR" <<'EOF'
"""Summarise the steps into gpu_check.json; a step passes on exit 0 and its own checks."""
import json
import os
import sys
import xml.etree.ElementTree as ET

import numpy as np
import torch

out = sys.argv[1]


def log(name):
    with open(os.path.join(out, "logs", f"{name}.log"), errors="replace") as f:
        return f.read()


def last_json(text):
    for line in reversed(text.splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                return None
    return None


def cuda_tests():
    suite = ET.parse(os.path.join(out, "cuda_tests.xml")).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    return counts, counts["tests"] > 0 and counts["skipped"] == 0  # on a GPU none may skip


def train_amp():
    text = log("train_amp")
    path = os.path.join(out, "train_amp", "compatibility.json")
    if not os.path.isfile(path):
        return {"error": "no compatibility.json"}, False
    with open(path) as f:
        mAP = np.asarray(json.load(f)["mAP"], dtype=float)
    on_cuda = "device cuda" in text and "needs CUDA" not in text
    ok = mAP.shape == (4, 4) and bool(np.isfinite(mAP).all()) and on_cuda
    return {"mAP": mAP.round(2).tolist(), "ran_on_cuda": on_cuda}, ok


steps = {}
with open(os.path.join(out, "steps.tsv")) as f:
    for line in f:
        name, rc, millis = line.rstrip("\n").split("\t")
        rc = int(rc)
        record = {"rc": rc, "seconds": round(int(millis) / 1000, 1),
                  "timed_out": rc in (124, 137),
                  "log": f"logs/{name}.log"}
        ok = rc == 0
        try:
            if name == "cuda_tests":
                record["tests"], checked = cuda_tests()
            elif name == "train_amp":
                record["result"], checked = train_amp()
            else:
                record["result"] = last_json(log(name))
                checked = record["result"] is not None
        except Exception as e:  # a missing or malformed output: the step failed
            record["error"], checked = f"{type(e).__name__}: {e}", False
        record["passed"] = ok and checked
        if not record["passed"]:
            record["log_tail"] = log(name)[-3000:]
        steps[name] = record

summary = {"passed": all(s["passed"] for s in steps.values()), "cuda": True,
           "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
           "torch": torch.__version__,
           "steps": steps}
with open(os.path.join(out, "gpu_check.json"), "w") as f:
    json.dump(summary, f, indent=1)
for name, s in steps.items():
    print(f"{name:12s} {'PASS' if s['passed'] else 'FAIL'}  rc {s['rc']}  {s['seconds']} s")
sys.exit(0 if summary["passed"] else 1)
EOF
