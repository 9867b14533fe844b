#!/usr/bin/env bash
# The assistant pack end to end, with tvmedge's own verbs:
#   data (espeak-ng, seeded) -> quantize the command model INT8 -> partition (predictions) -> compile the four
#   models for this host, rk3588 and visionfive2, and the answer LM (lm/) for this host -> run them on the
#   emulated boards -> measure accuracy, latency, the LM's answers and the offline profile's saving against a
#   live `tvmedge serve` (results.json, plots).
# Usage, after `bash scripts/setup.sh`:  bash examples/assistant/run.sh [--quick | --ci]
#   --quick: few test inputs, 2 inputs per model on the emulated boards, every step a tvmedge verb (slow test).
#   --ci: the smallest honest end-to-end run (the default test suite's): the --quick data, fewer inputs measured,
#   SEARCH=naive (TVM's default schedules: the fastest to compile), steps 2-6 in one Python process
#   (measure.py --build: the library calls the verbs make, TVM imported once instead of once per verb); the
#   emulated boards must match the host; results go to OUT, never over the committed ones.
# Env: PYTHON (default .venv/bin/python of this checkout), OUT (default examples/assistant/out),
#      SEARCH (default pack.yaml's tuning.search). Steps whose output is newer than their input are skipped
#      (delete OUT to redo everything, e.g. after changing SEARCH).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
PY="${PYTHON:-$REPO/.venv/bin/python}"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
OUT="${OUT:-$HERE/out}"
QUICK=(); MEASURE=(); DATA_SIZE=full; CI=""
case "${1:-}" in
  "") ;;
  --quick) QUICK=(--quick); MEASURE=(--quick --results "$OUT/results.json"); DATA_SIZE=quick ;;
  --ci) CI=1; QUICK=(--quick); MEASURE=(--ci --results "$OUT/results.json"); DATA_SIZE=quick
        SEARCH="${SEARCH:-naive}" ;;
  *) echo "run.sh: unknown option '$1' (--quick or --ci)" >&2; exit 2 ;;
esac
tvmedge() { "$PY" -m tvmedge.cli.main "$@"; }
setting() {  # a value of pack.yaml: setting tuning search
  "$PY" -c "import functools, sys, yaml; v = functools.reduce(lambda d, k: d[k], sys.argv[2:], yaml.safe_load(open(sys.argv[1])))
print(' '.join(map(str, v)) if isinstance(v, list) else v)" "$HERE/pack.yaml" "$@"
}
step() { echo "== $*" >&2; }
stale() { [ ! -e "$2" ] || [ "$1" -nt "$2" ]; }  # stale SOURCE PRODUCT: redo a step only when its input changed
BOARDS=($(setting boards)); MODELS=($(setting models)); HOST="$(setting host)"
SEARCH="${SEARCH:-$(setting tuning search)}"
mkdir -p "$OUT"

step "1/6 test + calibration audio (held-out voices, espeak-ng)"
[ "$(cat "$HERE/data/size.txt" 2>/dev/null)" = "$DATA_SIZE" ] || "$PY" "$HERE/train.py" --data-only "${QUICK[@]}"

if [ -n "$CI" ]; then
  step "2-6/6 quantize, partition, compile (--search $SEARCH) for $HOST and ${BOARDS[*]}, measure (the emulated
   boards against the host, the offline profile on a live service): one Python process"
  "$PY" "$HERE/measure.py" --build "$SEARCH" --out "$OUT" "${MEASURE[@]}"
  step "done: results.json, latency.png, confusion.png in $OUT; serve: $OUT/serve"
  exit 0
fi

step "2/6 quantize the command model: static INT8, front end float ($HERE/quant.yaml)"
if stale "$HERE/command.onnx" "$OUT/command.int8.onnx" || stale "$HERE/data/size.txt" "$OUT/command.int8.onnx"; then
  tvmedge quantize "$HERE/command.onnx" --config "$HERE/quant.yaml" -o "$OUT/command.int8.onnx" \
      --report "$OUT/quant_report.json" --evaluate "$HERE/data/command_test.npz"
fi

source_of() { [ "$1" = command ] && echo "$OUT/command.int8.onnx" || echo "$HERE/$1.onnx"; }

step "3/6 partition: the cost model's predicted latency per model and board (predictions, nothing measured)"
# Float graphs: the cost model has no int8 rate for the VisionFive 2's U74 cores (partition refuses INT8 there).
for board in "${BOARDS[@]}"; do
  for m in "${MODELS[@]}"; do
    stale "$HERE/$m.onnx" "$OUT/partition-$m-$board.json" || continue
    plot=(); [ "$m/$board" = command/rk3588 ] && plot=(--plot "$OUT/plan-command-rk3588.png")
    tvmedge partition "$HERE/$m.onnx" --target "$board" --explain "${plot[@]}" --json > "$OUT/partition-$m-$board.json"
    "$PY" -c "import json, sys; d = json.load(open(sys.argv[1])); print('   $m on $board: predicted', round(d['predicted']['latency_ms'], 3), 'ms')" "$OUT/partition-$m-$board.json" >&2
  done
done

step "4/6 compile (--search $SEARCH) each model for $HOST and ${BOARDS[*]}; the float command model for $HOST too"
for board in "$HOST" "${BOARDS[@]}"; do
  for m in "${MODELS[@]}"; do
    stale "$(source_of "$m")" "$OUT/$board/$m/manifest.json" || continue
    tvmedge compile "$(source_of "$m")" --target "$board" --search "$SEARCH" -o "$OUT/$board/$m" --json > /dev/null
  done
  echo "   $board: $(du -sh "$OUT/$board" | cut -f1) for ${MODELS[*]}" >&2
done
if stale "$HERE/command.onnx" "$OUT/$HOST-fp32/command/manifest.json"; then
  tvmedge compile "$HERE/command.onnx" --target "$HOST" --search "$SEARCH" -o "$OUT/$HOST-fp32/command" --json > /dev/null
fi
# The answer LM (an LM package folder: prefill + decode graphs, lm.json), served on this host only for now.
if [ -f "$HERE/lm/lm.json" ] && stale "$HERE/lm/lm.json" "$OUT/$HOST/lm/lm.json"; then
  tvmedge compile "$HERE/lm" --target "$HOST" --search "$SEARCH" -o "$OUT/$HOST/lm" --json > /dev/null
  echo "   $HOST: the answer LM, $(du -sh "$OUT/$HOST/lm" | cut -f1)" >&2
fi

step "5/6 the INT8 command model on each emulated board, against ONNX Runtime (measure.py runs all four)"
"$PY" -c "
import numpy as np, sys
audio = np.load(sys.argv[1] + '/data/audio_test.npz')['audio'][:1]
np.savez(sys.argv[2] + '/audio.npz', audio=audio)" "$HERE" "$OUT"
# ONNX Runtime's optimized int8 kernels (its default) disagree with the QDQ model's own arithmetic on this CPU,
# where tvmedge's artifacts match ONNX Runtime without graph optimizations (examples/smart-home/README.md):
# a mismatch is reported and the run goes on; measure.py compares every board with the host.
for board in "${BOARDS[@]}"; do
  tvmedge run "$OUT/$board/command" --board "emu:$board" --input "$OUT/audio.npz" --reference "$OUT/command.int8.onnx" \
      --repeat 0 || echo "   emu:$board: outputs differ from ONNX Runtime's (see above); continuing" >&2
done

step "6/6 measure: accuracy, host latency, predictions, emulated vs host, and the offline profile on a live service"
"$PY" "$HERE/measure.py" --out "$OUT" --search "$SEARCH" "${MEASURE[@]}"
step "done: results.json, latency.png, confusion.png (in $HERE, or $OUT with --quick); serve: $OUT/serve"
