#!/usr/bin/env bash
# Set up tvmedge on a fresh Debian/Ubuntu machine: Debian packages (cross compilers, qemu-user) and a
# virtualenv in .venv with tvmedge installed in editable mode. Safe to run again: it skips what is there.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(qemu-user g++-aarch64-linux-gnu g++-riscv64-linux-gnu espeak-ng)  # espeak-ng: speech for the audio packs
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PYTHON --version)" >&2
  "$PYTHON" -m venv .venv
fi
# Install only when setup.cfg changed since the last successful install (pip is slow even with nothing to do).
stamp=.venv/.tvmedge-installed
want="$(sha256sum setup.cfg pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing Python packages into .venv (first time: a few minutes)" >&2
  log=.venv/pip-install.log
  if ! { .venv/bin/python -m pip install --upgrade pip && .venv/bin/python -m pip install -e '.[test,boards]'; } >"$log" 2>&1; then
    tail -n 20 "$log" >&2; echo "setup: pip install failed (full log: $log)" >&2; exit 1
  fi
  .venv/bin/python -c "import tvm, tvm_ffi, onnx, onnxslim, tvmedge" || { echo "setup: Python install failed (log: $log)" >&2; exit 1; }
  # The optional torch extra (.pt2 programs), only as torch's CPU build: PyPI's Linux wheels are CUDA builds of
  # several GB. pip finds the CPU build on PyTorch's CPU index or in a local wheel folder (find-links).
  if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
    if .venv/bin/python -m pip install --only-binary=:all: "torch==${TORCH_CPU_VERSION:-2.13.0+cpu}" >>"$log" 2>&1; then
      echo "setup: installed torch (CPU build) for torch.export (.pt2) models" >&2
    else
      echo "setup: no CPU build of torch found; .pt2 support and its tests are skipped (add it with:" \
           "pip install torch --index-url https://download.pytorch.org/whl/cpu)" >&2
    fi
  fi
  echo "$want" > "$stamp"
fi
echo "setup: ready (.venv/bin/tvmedge)" >&2
