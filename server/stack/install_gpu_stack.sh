#!/usr/bin/env bash
# Build babelcap's GPU serving environment from the tested lock: vLLM 0.10.2 (CUDA 12.8 torch
# 2.8.0) and exactly the versions in requirements-gpu.lock, then babelcap itself, editable,
# with no further dependencies. Any x86-64 Linux builds it, with or without a GPU: CI builds it
# to run tests/gpu (vLLM's own config code with CUDA faked) and catch a broken GPU stack early.
#
# Usage: server/stack/install_gpu_stack.sh    (venv at $BABELCAP_GPU_VENV, default ./.venv-gpu)
#        server/stack/install_gpu_stack.sh --lock   (re-resolve pyproject's gpu extra into the lock)
# Idempotent: when the stamp matches this script, the lock and pyproject.toml, it checks the
# imports and returns in seconds. uv installs by hard-linking from its cache, so a second
# venv (another clone, a CI run) costs seconds and almost no disk.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${BABELCAP_GPU_VENV:-$repo/.venv-gpu}"
lock="$here/requirements-gpu.lock"
# The platform the lock is for: vLLM 0.10.2's CUDA wheels are x86-64 Linux, CPython 3.11 here.
lock_python=3.11
lock_platform=x86_64-unknown-linux-gnu

say() { printf 'install-gpu-stack: %s\n' "$*" >&2; }
die() { printf 'install-gpu-stack: ERROR: %s\n' "$*" >&2; exit 1; }

# --- uv: on PATH, or installed with pip into a small tool venv once ---------------------------
find_uv() {
  if [ -n "${BABELCAP_UV:-}" ]; then uv="$BABELCAP_UV"; return; fi
  if command -v uv >/dev/null; then uv="$(command -v uv)"; return; fi
  local tools="${XDG_CACHE_HOME:-$HOME/.cache}/babelcap/uv-tool"
  if [ ! -x "$tools/bin/uv" ]; then
    say "installing uv with pip into $tools"
    "$python" -m venv "$tools"
    "$tools/bin/python" -m pip install -q --disable-pip-version-check 'uv>=0.5' \
      2> >(grep -v '^WARNING: Location .* is ignored' >&2) || die "could not pip install uv"
  fi
  uv="$tools/bin/uv"
}

python="${BABELCAP_PYTHON:-}"
if [ -z "$python" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      python="$candidate"; break
    fi
  done
fi
[ -n "$python" ] || die "needs CPython 3.11 (the lock is resolved for it); install python3.11 or set BABELCAP_PYTHON."

if [ "${1:-}" = --lock ]; then
  find_uv
  say "resolving pyproject.toml's gpu and dev extras for CPython $lock_python on $lock_platform"
  # The header names the command that made the file; no index URL, no absolute paths in it.
  (cd "$repo" && "$uv" pip compile pyproject.toml --extra gpu --extra dev \
      --python-version "$lock_python" --python-platform "$lock_platform" \
      --no-emit-index-url --custom-compile-command 'make gpu-lock' -o "$lock" -q)
  say "wrote $lock: $(grep -c '==' "$lock") pinned packages"
  exit 0
fi

# --- What this stack can run on --------------------------------------------------------------
[ "$(uname -s)" = Linux ] || die "Linux only (vLLM 0.10.2 ships manylinux CUDA wheels); this is $(uname -s)."
[ "$(uname -m)" = x86_64 ] || die "x86-64 only: the lock is resolved for x86-64 Linux, this is $(uname -m)."
[ -f "$lock" ] || die "$lock is missing: run 'make gpu-lock'."

# --- Up to date already? ---------------------------------------------------------------------
stamp_file="$venv/.babelcap-gpu-stack"
stamp="$(cat "$0" "$lock" "$repo/pyproject.toml" | sha256sum | cut -c1-16)"
check_imports() {
  # vllm._C needs libcuda, which a machine without a GPU lacks: import the Python side only.
  "$venv/bin/python" - <<'PY'
import torch, vllm, transformers, bitsandbytes, compressed_tensors, fastapi, babelcap.server.profiles  # noqa
PY
}
if [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp" ] && check_imports 2>/dev/null; then
  say "up to date: $venv"
  exit 0
fi

# --- Build -----------------------------------------------------------------------------------
started=$SECONDS
find_uv
[ -x "$venv/bin/python" ] || { say "creating $venv"; "$uv" venv -q --python "$python" "$venv"; }
say "installing the locked GPU stack (first time on this machine: about 10 GB, a few minutes)"
# sync, not install: the venv ends up with exactly the lock's packages, nothing left over.
"$uv" pip sync -q --python "$venv/bin/python" "$lock"
say "installing babelcap (editable, no dependencies beyond the lock)"
"$uv" pip install -q --python "$venv/bin/python" --no-deps -e "$repo"

check_imports || die "the environment was built but vLLM or babelcap does not import; see the error above."
echo "$stamp" >"$stamp_file"
say "ready in $((SECONDS - started)) s: $venv"
