"""Find the media to caption: files, folders (recursively), globs and file lists, walked lazily.

The walk is a generator, so a million files cost the memory of one directory listing; the
runner feeds it into a bounded queue. A file's kind is decided by its first bytes, not its
name. Hidden files and non-media files are skipped and counted; symlink loops are walked once;
an unreadable file, or a file named like media whose content is not, becomes an error record.
"""

from __future__ import annotations

import glob
import logging
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = ["Found", "Walk", "sniff"]

log = logging.getLogger(__name__)

Kind = Literal["image", "video"]

_IMAGE_SUFFIXES = {
    ".jpg", ".jpeg", ".jpe", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".heic", ".heif",
    ".avif", ".jxl", ".ico", ".ppm", ".pgm", ".pbm", ".tga", ".jp2",
}  # fmt: skip
_VIDEO_SUFFIXES = {
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ts", ".mts", ".m2ts", ".mpg", ".mpeg",
    ".flv", ".wmv", ".3gp", ".ogv",
}  # fmt: skip
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"mif1", b"msf1", b"avif", b"avis"}


def sniff(head: bytes) -> Kind | None:
    """``image``, ``video`` or None from a file's first 1024 bytes (magic numbers)."""
    if head.startswith((b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")):
        return "image"
    if head.startswith((b"II*\x00", b"MM\x00*", b"\x00\x00\x00\x0cjP  ", b"\xff\x0a")):
        return "image"  # TIFF, JPEG 2000, JPEG XL
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "video"
    if head[4:8] == b"ftyp":
        return "image" if head[8:12] in _HEIF_BRANDS else "video"  # MP4, MOV, 3GP, M4A
    if head[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip"):
        return "video"  # QuickTime without a leading ftyp
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video"  # Matroska / WebM (EBML)
    if head.startswith((b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3", b"FLV\x01", b"OggS")):
        return "video"  # MPEG-PS, MPEG-1/2 elementary, FLV, Ogg (Theora or audio: decided later)
    if head.startswith(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"):
        return "video"  # ASF / WMV
    if len(head) > 376 and head[0] == head[188] == head[376] == 0x47:
        return "video"  # MPEG-TS: a sync byte every 188 bytes
    return None


@dataclass(frozen=True)
class Found:
    """One walked file: a media kind, or an error to record for it."""

    path: Path
    kind: Kind | None
    error: str | None = None


@dataclass
class Walk:
    """A lazy walk over ``sources``, folder entries in the order the file system gives them;
    ``skipped`` counts what was passed over, by reason."""

    sources: Iterable[str | Path]
    include_hidden: bool = False
    skipped: Counter[str] = field(default_factory=Counter)

    def __iter__(self) -> Iterator[Found]:
        seen_dirs: set[tuple[int, int]] = set()
        for source in self.sources:
            text = str(source)
            path = Path(text)
            if path.is_dir():
                yield from self._walk(path, seen_dirs)
            elif path.exists() or path.is_symlink():
                yield self._classify(path)
            elif glob.has_magic(text):
                matched = False
                seen_files: set[tuple[int, int]] = set()  # "**" follows symlink loops
                for name in glob.iglob(text, recursive=True):
                    matched = True
                    child = Path(name)
                    if child.is_dir():
                        yield from self._walk(child, seen_dirs)
                        continue
                    try:
                        info = child.stat()
                    except OSError:
                        yield self._classify(child)
                        continue
                    if (info.st_dev, info.st_ino) in seen_files:
                        self.skipped["symlink loop"] += 1
                        continue
                    seen_files.add((info.st_dev, info.st_ino))
                    yield self._classify(child)
                if not matched:
                    log.warning("%s matched no files", text)
                    self.skipped["no match"] += 1
            else:
                yield Found(path, None, f"{path} does not exist; check the path")

    def _walk(self, folder: Path, seen: set[tuple[int, int]]) -> Iterator[Found]:
        try:
            info = folder.stat()
        except OSError as error:
            yield Found(folder, None, f"cannot open folder {folder}: {error.strerror}")
            return
        if (info.st_dev, info.st_ino) in seen:
            self.skipped["symlink loop"] += 1
            return
        seen.add((info.st_dev, info.st_ino))
        try:
            listing = os.scandir(folder)
        except OSError as error:
            yield Found(folder, None, f"cannot list folder {folder}: {error.strerror}; check its "
                        "permissions")  # fmt: skip
            return
        # Entries are taken as the directory yields them, never collected or sorted, so a folder
        # of a million files costs no more memory than one of a hundred.
        with listing:
            yield from self._entries(listing, seen)

    def _entries(
        self, listing: Iterator[os.DirEntry[str]], seen: set[tuple[int, int]]
    ) -> Iterator[Found]:
        for entry in listing:
            if entry.name.startswith(".") and not self.include_hidden:
                self.skipped["hidden"] += 1
                continue
            try:
                is_dir = entry.is_dir()  # follows symlinks; loops are caught by `seen`
            except OSError:
                is_dir = False
            if is_dir:
                yield from self._walk(Path(entry.path), seen)
            else:
                found = self._classify(Path(entry.path))
                if found.kind or found.error:
                    yield found

    def _classify(self, path: Path) -> Found:
        try:
            with path.open("rb") as handle:
                head = handle.read(1024)
        except FileNotFoundError:
            return Found(path, None, f"{path} is a broken symlink or vanished; fix or remove it")
        except OSError as error:
            return Found(path, None, f"cannot read {path}: {error.strerror}; check permissions")
        kind = sniff(head)
        suffix = path.suffix.lower()
        if kind is None and (suffix in _IMAGE_SUFFIXES or suffix in _VIDEO_SUFFIXES):
            what = "empty" if not head else "not a known image or video format"
            return Found(path, "image" if suffix in _IMAGE_SUFFIXES else "video",
                         f"{path} is named like media but its content is {what}; "
                         "is the file complete?")  # fmt: skip
        if kind is None:
            self.skipped["not media"] += 1
        return Found(path, kind)


def read_file_list(path: Path) -> Iterator[str]:
    """Paths listed one per line in ``path`` (``-`` is not special here); blanks and # skipped."""
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if line and not line.startswith("#"):
                yield line
