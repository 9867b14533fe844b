#!/usr/bin/env bash
# Re-create the shipped x86 tuning logs (tuning_logs/<this CPU's key>/) for the benchmark models.
# Budgets are wall-clock minutes per model on a 2-vCPU machine; the records are valid for this CPU only.
set -euo pipefail
cd "$(dirname "$0")/.."
LIGHT=$(.venv/bin/python -c "import onnx, os; print(os.path.join(os.path.dirname(onnx.__file__), 'backend/test/data/light'))")
tune() { .venv/bin/tvmedge tune "$1" --target x86-host --minutes "$2" --log-dir "tuning_logs/$KEY" --plot "tuning_logs/$KEY/curve-$(basename "$1" .onnx).png"; }
KEY=$(.venv/bin/python -c "from tvmedge.devices.board import load_board; from tvmedge.tune.database import target_key; print(target_key(load_board('x86-host').tvm_target()))")
tune examples/models/tiny_cnn.onnx "${TINY_MIN:-1}"
tune "$LIGHT/light_squeezenet.onnx" "${SQUEEZENET_MIN:-3}"
tune "$LIGHT/light_shufflenet.onnx" "${SHUFFLENET_MIN:-5}"
tune "$LIGHT/light_inception_v1.onnx" "${INCEPTION_MIN:-5}"
tune "$LIGHT/light_resnet50.onnx" "${RESNET_MIN:-12}"
