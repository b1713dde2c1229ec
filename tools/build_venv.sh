#!/usr/bin/env bash
# Create the separate build environment used by `python -m pipelines.build_model` for its MediaPipe step
# (tools/build_mediapipe_cache.py runs in it).
# MediaPipe 0.10.21 is the last release that bundles the legacy Face Mesh model; it needs numpy < 2, so it
# cannot live in recon3d's main venv. Usage: tools/build_venv.sh [VENV_DIR]  (default: .build-venv)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.build-venv}"
PY="${PYTHON:-python3}"
"$PY" -m venv "$VENV"
"$VENV/bin/pip" install --quiet "mediapipe==0.10.21" "numpy<2"
"$VENV/bin/python" -c "import mediapipe as mp; from mediapipe.python.solutions import face_mesh; print('mediapipe', mp.__version__, 'ok')"
echo "build venv ready: $VENV/bin/python (pass it as --mediapipe-python if not the default)"
