#!/usr/bin/env bash
# The main job: set up, compile the bundled example model for rk3588, build the emulated rk3588 board
# (once, cached), run the artifact on it and print its outputs next to ONNX Runtime's.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
TVMEDGE=.venv/bin/tvmedge
export TVMEDGE_PROGRESS=1
MODEL=examples/models/tiny_cnn.onnx
OUT="${OUT:-out/tiny_cnn-rk3588}"

$TVMEDGE targets show rk3588
$TVMEDGE inspect "$MODEL"
$TVMEDGE compile "$MODEL" --target rk3588 -o "$OUT"
$TVMEDGE board setup rk3588
$TVMEDGE run "$OUT" --board emu:rk3588 --random --repeat 3 --reference "$MODEL"
