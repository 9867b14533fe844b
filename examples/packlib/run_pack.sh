#!/usr/bin/env bash
# One scenario pack through tvmedge, every step a tvmedge verb except data, comparison and measurement:
#   data -> quantize (INT8) -> partition plan (--explain, --plot) -> compile for the ARM board, the RISC-V
#   board and this host -> run on the emulated boards, outputs checked against the host's -> serve + one
#   request -> measure (results.json and plots in the pack folder).
# Usage: bash examples/packlib/run_pack.sh examples/<pack> [--ci]
#   --ci: the smallest honest end-to-end run (what the default test suite runs, ~30-40 s): 16 calibration and
#   8 test images, TVM's default schedules (SEARCH=naive: the fastest to compile); quantize, partition, the
#   three compiles and the measurement (which runs the emulated boards and fails unless they match the host)
#   in one Python process (`cli.py build --measure`: the library calls the verbs make, TVM imported once
#   instead of once per verb, ~10 s each); then serve + one request. results.json and the plots go to OUT,
#   never over the pack's committed results.
# Environment: PYTHON (default .venv/bin/python of the repository), OUT (default <pack>/out), RESULTS (where
# results.json and the plots go; default the pack folder, OUT with --ci), SEARCH (schedule search; default
# pack.yaml's tuning.search, naive with --ci), and for a reduced run CALIB, TEST (data sizes) and LIMIT (test
# images measured).
set -euo pipefail
PACK="$(cd "$1" && pwd)"
LIB="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$LIB/../.." && pwd)"
PY="${PYTHON:-$REPO/.venv/bin/python}"
OUT="${OUT:-$PACK/out}"
CI=""
case "${2:-}" in
  "") ;;
  --ci) CI=1; CALIB="${CALIB:-16}"; TEST="${TEST:-8}"; LIMIT="${LIMIT:-8}"; RESULTS="${RESULTS:-$OUT}"
        SEARCH="${SEARCH:-naive}" ;;
  *) echo "run.sh: unknown option '$2' (the only option is --ci)" >&2; exit 2 ;;
esac
tvmedge() { "$PY" -m tvmedge.cli.main "$@"; }
step() { printf '\n== %s\n' "$*"; }
mkdir -p "$OUT"
read -r NAME ARM RISCV PACK_SEARCH < <("$PY" "$LIB/cli.py" boards "$PACK")
SEARCH="${SEARCH:-$PACK_SEARCH}"

step "1/7 data: synthetic, seeded ($PACK/dataset.py)"
"$PY" "$LIB/cli.py" data "$PACK" ${CALIB:+--calib "$CALIB"} ${TEST:+--test "$TEST"}

if [ -n "$CI" ]; then
step "2-5,7/7 quantize, partition ($ARM, $RISCV), compile INT8 for $ARM, $RISCV and this host, measure, the emulated
   boards checked against the host (exit 1 unless they match): one Python process"
"$PY" "$LIB/cli.py" build "$PACK" --out "$OUT" --search "$SEARCH" --measure --results "$RESULTS" --limit "$LIMIT"
else
step "2/7 quantize: static INT8, calibrated on data/calib.npz, evaluated on data/test.npz"
tvmedge quantize "$PACK/model.onnx" --config "$PACK/quant.yaml" -o "$OUT/model.int8.onnx" \
    --evaluate "$PACK/data/test.npz" --report "$OUT/quant_report.json"

step "3/7 partition plans for $ARM and $RISCV (cost-model predictions, nothing measured)"
tvmedge partition "$OUT/model.int8.onnx" --target "$ARM" --explain --plot "$OUT/partition_$ARM.png" --json \
    > "$OUT/partition_$ARM.json"
# The cost model has no INT8 rate for a RISC-V core without int8 peaks in its board YAML (visionfive2's U74,
# bananapi-f3's X60), so partition refuses the INT8 model there: the float model's plan is priced instead, and
# results.json says so.
tvmedge partition "$OUT/model.int8.onnx" --target "$RISCV" --json > "$OUT/partition_$RISCV.json" || {
    echo "(no INT8 prediction for $RISCV, see the error above: predicting the float model instead)"
    tvmedge partition "$PACK/model.onnx" --target "$RISCV" --json > "$OUT/partition_$RISCV.json"
}
"$PY" "$LIB/cli.py" plan "$OUT/partition_$ARM.json" "$OUT/partition_$RISCV.json"

step "4/7 compile (INT8; search: $SEARCH) for $ARM, $RISCV and this host"
for board in "$ARM" "$RISCV"; do
    tvmedge compile "$PACK/model.onnx" --target "$board" --quant "$PACK/quant.yaml" --search "$SEARCH" -o "$OUT/$board"
done
tvmedge compile "$PACK/model.onnx" --target x86-host --quant "$PACK/quant.yaml" --search "$SEARCH" -o "$OUT/models/$NAME"

step "5/7 run one test image on this host and on the emulated boards (qemu-user; timings say nothing about the boards)"
tvmedge run "$OUT/models/$NAME" --input "$PACK/data/sample.npz" -o "$OUT/host.out.npz" --repeat 0
for board in "$ARM" "$RISCV"; do
    tvmedge run "$OUT/$board" --board "emu:$board" --input "$PACK/data/sample.npz" -o "$OUT/$board.out.npz" --repeat 0
done
"$PY" "$LIB/cli.py" check "$OUT/host.out.npz" "$OUT/$ARM.out.npz" "$OUT/$RISCV.out.npz"
fi

step "6/7 serve $OUT/models over REST and send one request"
PORT="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
# The server is started directly (not through the tvmedge function, whose subshell would be the PID killed)
# and killed on any exit, so a failing step leaves no orphaned service behind.
"$PY" -m tvmedge.cli.main serve --models "$OUT/models" --port "$PORT" > "$OUT/serve.log" 2>&1 &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
    if "$PY" -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$PORT/healthz', timeout=1)" 2>/dev/null; then break; fi
    kill -0 "$SERVER" 2>/dev/null || { cat "$OUT/serve.log"; exit 1; }
    sleep 0.5
done
"$PY" "$LIB/cli.py" request "http://127.0.0.1:$PORT/v1/models/$NAME/infer" "$PACK/data/sample.npy"
kill "$SERVER"; wait "$SERVER" 2>/dev/null || true
trap - EXIT

if [ -z "$CI" ]; then
step "7/7 measure: accuracy, size, host latency (measured); board latency (predicted); emulated outputs"
"$PY" "$LIB/cli.py" measure "$PACK" --build "$OUT" --search "$SEARCH" ${RESULTS:+--results "$RESULTS"} ${LIMIT:+--limit "$LIMIT"}
fi
