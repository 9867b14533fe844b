#!/usr/bin/env bash
# The pack end to end: data -> quantize -> partition -> compile (ARM, RISC-V, host) -> emulated boards -> serve
# -> measure. See README.md here; the steps are in ../packlib/run_pack.sh (shared by the vision packs).
# Usage: bash run.sh [--ci]   (--ci: the reduced run the default test suite runs; results go to out/)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
exec bash "$HERE/../packlib/run_pack.sh" "$HERE" "$@"
