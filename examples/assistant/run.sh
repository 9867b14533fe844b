#!/usr/bin/env bash
# The assistant pack end to end, with tvmedge's own verbs:
#   data (espeak-ng, seeded) -> quantize the command model INT8 -> partition (predictions) -> compile the four
#   models for this host, rk3588 and visionfive2 -> run them on the emulated boards -> measure accuracy,
#   latency and the offline profile's saving against a live `tvmedge serve` (results.json, plots).
# Usage, after `bash scripts/setup.sh`:  bash examples/assistant/run.sh [--quick]
#   --quick: few test inputs, 2 inputs per model on the emulated boards (what the CI test runs).
# Env: PYTHON (default .venv/bin/python of this checkout), OUT (default examples/assistant/out),
#      SEARCH (default pack.yaml's tuning.search).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
PY="${PYTHON:-$REPO/.venv/bin/python}"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
OUT="${OUT:-$HERE/out}"
QUICK=(); MEASURE=(); DATA_SIZE=full
if [ "${1:-}" = "--quick" ]; then QUICK=(--quick); MEASURE=(--quick --results "$OUT/results.json"); DATA_SIZE=quick; fi
tvmedge() { "$PY" -m tvmedge.cli.main "$@"; }
setting() {  # a value of pack.yaml: setting tuning search
  "$PY" -c "import functools, sys, yaml; v = functools.reduce(lambda d, k: d[k], sys.argv[2:], yaml.safe_load(open(sys.argv[1])))
print(' '.join(map(str, v)) if isinstance(v, list) else v)" "$HERE/pack.yaml" "$@"
}
step() { echo "== $*" >&2; }
BOARDS=($(setting boards)); MODELS=($(setting models)); HOST="$(setting host)"
SEARCH="${SEARCH:-$(setting tuning search)}"
mkdir -p "$OUT"

step "1/6 test + calibration audio (held-out voices, espeak-ng)"
[ "$(cat "$HERE/data/size.txt" 2>/dev/null)" = "$DATA_SIZE" ] || "$PY" "$HERE/train.py" --data-only "${QUICK[@]}"

step "2/6 quantize the command model: static INT8, front end float ($HERE/quant.yaml)"
tvmedge quantize "$HERE/command.onnx" --config "$HERE/quant.yaml" -o "$OUT/command.int8.onnx" \
    --report "$OUT/quant_report.json" --evaluate "$HERE/data/command_test.npz"

source_of() { [ "$1" = command ] && echo "$OUT/command.int8.onnx" || echo "$HERE/$1.onnx"; }

step "3/6 partition: the cost model's predicted latency per model and board (predictions, nothing measured)"
for board in "${BOARDS[@]}"; do
  for m in "${MODELS[@]}"; do
    tvmedge partition "$(source_of "$m")" --target "$board" --explain > "$OUT/partition-$m-$board.txt"
    echo "   $m on $board: $(sed -n 2p "$OUT/partition-$m-$board.txt")" >&2
  done
done
tvmedge partition "$OUT/command.int8.onnx" --target rk3588 --plot "$OUT/plan-command-rk3588.png" > /dev/null

step "4/6 compile (--search $SEARCH) each model for $HOST and ${BOARDS[*]}; the float command model for $HOST too"
for board in "$HOST" "${BOARDS[@]}"; do
  for m in "${MODELS[@]}"; do
    tvmedge compile "$(source_of "$m")" --target "$board" --search "$SEARCH" -o "$OUT/$board/$m" --json > /dev/null
  done
  echo "   $board: $(du -sh "$OUT/$board" | cut -f1) for ${MODELS[*]}" >&2
done
tvmedge compile "$HERE/command.onnx" --target "$HOST" --search "$SEARCH" -o "$OUT/$HOST-fp32/command" --json > /dev/null

step "5/6 one input per model on each emulated board, against ONNX Runtime"
"$PY" -c "
import numpy as np, sys
sys.path.insert(0, sys.argv[1])
import language
audio = np.load(sys.argv[1] + '/data/audio_test.npz')['audio'][:1]
np.savez(sys.argv[2] + '/audio.npz', audio=audio)
np.savez(sys.argv[2] + '/text.npz', text=language.featurize(['how do i reset the device']))" "$HERE" "$OUT"
for board in "${BOARDS[@]}"; do
  for m in "${MODELS[@]}"; do
    case "$m" in vad|command) input="$OUT/audio.npz" ;; *) input="$OUT/text.npz" ;; esac
    tvmedge run "$OUT/$board/$m" --board "emu:$board" --input "$input" --reference "$(source_of "$m")" --repeat 0 --json \
      | "$PY" -c "import json, sys; d = json.load(sys.stdin); print('   $m on', d['where'], 'vs ONNX Runtime:', ', '.join(f\"{r['name']} max|diff| {r['max_abs_diff']:.1e}\" for r in d['comparison']))" >&2
  done
done

step "6/6 measure: accuracy, host latency, predictions, emulated vs host, and the offline profile on a live service"
"$PY" "$HERE/measure.py" --out "$OUT" "${MEASURE[@]}"
step "done: results.json, latency.png, confusion.png (in $HERE, or $OUT with --quick); serve: $OUT/serve"
