"""Find the media to caption: files, folders (recursively), globs and file lists, walked lazily.

The walk is a generator, so a million files cost the memory of one directory listing; the
runner feeds it into a bounded queue. Nothing in it can hang:

- only regular files are opened (a FIFO, socket or device is never opened: named on the command
  line or in a list it gets an error record, met in a folder or a glob it is skipped and
  counted), and a file is read for at most :data:`HEAD_BYTES` to decide its kind;
- globs are expanded by the same walk as folders (``**`` included), so a directory reached
  twice, through a symlink loop or an alias, is listed once per pattern position: Python's own
  ``glob("**")`` expands two symlink loops into about 2^40 paths.

A file's kind is decided by its first bytes, not its name: a table of the common magic
numbers, then the prefix test Pillow itself applies to every format it can decode (formats
with no or a very short signature, such as TGA, count only with their own suffix). Hidden
files and non-media files are skipped and counted; an unreadable file, a symlink loop, an SVG,
or a file named like media whose content is not, becomes an error record.
"""

from __future__ import annotations

import errno
import fnmatch
import glob
import io
import logging
import os
import re
import stat
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from babelcap.client.storage import RemoteObject, is_uri, list_objects, local_path, storage_error

__all__ = ["HEAD_BYTES", "Found", "Walk", "open_regular", "read_file_list", "sniff"]

log = logging.getLogger(__name__)

Kind = Literal["image", "video"]

#: The most bytes read from a file to decide its kind.
HEAD_BYTES = 4096

_IMAGE_SUFFIXES = {
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".apng", ".gif", ".webp", ".bmp", ".dib", ".tif",
    ".tiff", ".heic", ".heif", ".avif", ".jxl", ".ico", ".cur", ".ppm", ".pgm", ".pbm", ".pnm",
    ".pfm", ".tga", ".jp2", ".j2k", ".jpx", ".pcx", ".qoi", ".dds", ".psd", ".sgi", ".xbm",
    ".xpm", ".blp", ".icns", ".msp", ".ras", ".im", ".svg", ".svgz",
}  # fmt: skip
_VIDEO_SUFFIXES = {
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ts", ".mts", ".m2ts", ".mpg", ".mpeg",
    ".flv", ".wmv", ".3gp", ".ogv",
}  # fmt: skip
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"mif1", b"msf1", b"avif", b"avis"}
# Pillow formats that are not images babelcap can caption: stubs that need a handler Pillow
# does not ship (BUFR, GRIB, HDF5, WMF outside Windows), EPS (needs Ghostscript), and MPEG
# (a video, which Pillow only sizes).
_NOT_IMAGES = {"BUFR", "GRIB", "HDF5", "WMF", "EPS", "MPEG"}
# Formats whose signature is absent, two bytes long or shared (a CUR starts as a TGA does):
# random data or another format matches them, so they count only when the file also carries one
# of the format's own suffixes.
_WEAK_SIGNATURE = {
    "CUR", "DIB", "FLI", "GBR", "IM", "IMT", "IPTC", "PCD", "PCX", "SGI", "SPIDER", "TGA",
}  # fmt: skip
_SPECIAL_FILES = {
    stat.S_IFIFO: "a named pipe (FIFO)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


def _magic(head: bytes) -> Kind | None:
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


def pillow_format(head: bytes, suffix: str = "") -> str | None:
    """The Pillow format that would open a file starting with ``head`` (named ``*suffix``), by
    Pillow's own per-format prefix tests; None if no decodable format claims it."""
    from PIL import Image

    Image.init()
    by_suffix = Image.registered_extensions().get(suffix.lower())
    for name, (factory, accept) in Image.OPEN.items():
        if name in _NOT_IMAGES:
            continue
        weak = accept is None or name in _WEAK_SIGNATURE
        if weak and by_suffix != name:
            continue
        try:
            claimed = accept is None or accept(head[:16])
        except (IndexError, ValueError):
            claimed = False
        if not claimed or isinstance(claimed, str):  # a string is Pillow declining, with why
            continue
        if not weak:
            return name
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:  # a weak signature: let the plugin parse the header it needs
                factory(io.BytesIO(head), "")
            except Image.DecompressionBombError:
                return name
            except Exception:  # any failure of a plugin's parser means "not this format"
                continue
        return name
    return None


def sniff(head: bytes, suffix: str = "") -> Kind | None:
    """``image``, ``video`` or None from a file's first bytes (up to :data:`HEAD_BYTES`) and, for
    formats without a real signature, its suffix."""
    return _magic(head) or ("image" if pillow_format(head, suffix) else None)


def _is_svg(head: bytes, suffix: str) -> bool:
    if suffix in (".svg", ".svgz"):
        return True
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in text)


def open_regular(path: Path) -> int:
    """A read-only descriptor of ``path`` if it is a regular file; OSError otherwise. A FIFO,
    socket or device is never opened (opening one can block or have side effects)."""
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    return _open_checked(path)


def _open_checked(path: Path) -> int:
    # O_NONBLOCK: a file swapped for a FIFO after the check still cannot block the open.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    return fd


def _read_head(fd: int, limit: int) -> bytes:
    chunks, size = [], 0
    while size < limit and (chunk := os.read(fd, limit - size)):
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


@dataclass(frozen=True)
class Found:
    """One walked file or object: a media kind, or an error to record for it."""

    path: Path | RemoteObject
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
        seen_dirs: set[tuple[int, ...]] = set()
        for source in self.sources:
            text = str(source)
            if isinstance(source, str) and is_uri(text):
                if (local := local_path(text)) is None:
                    yield from self._remote(text)
                    continue
                text = local
            path = Path(text)
            if path.is_dir():
                yield from self._walk(path, seen_dirs)
            elif path.exists() or path.is_symlink():
                if (found := self._classify(path, named=True)) is not None:
                    yield found
            elif glob.has_magic(text):
                before = self.skipped.total()
                matched = False
                for found in self._glob(text, seen_dirs):
                    matched = True
                    yield found
                if not matched and self.skipped.total() == before:
                    log.warning("%s matched no files", text)
                    self.skipped["no match"] += 1
            else:
                yield Found(path, None, f"{path} does not exist; check the path")

    def _remote(self, uri: str) -> Iterator[Found]:
        """The objects ``uri`` names, kinds from their names (content is checked when read)."""
        matched = False
        magic = re.search(r"[*?[]", uri)
        base = uri[: uri.rfind("/", 0, magic.start()) + 1] if magic else uri.rstrip("/") + "/"
        try:
            for item in list_objects(uri, include_hidden=True):
                matched = True
                rest = item.uri[len(base) :] if item.uri.startswith(base) else item.name
                if not self.include_hidden and any(p.startswith(".") for p in rest.split("/")):
                    self.skipped["hidden"] += 1
                    continue
                suffix = item.suffix
                if suffix in (".svg", ".svgz"):
                    yield Found(item, "image", f"{item} is an SVG (vector) image; babelcap "
                                "captions raster images: convert it first")  # fmt: skip
                elif suffix in _IMAGE_SUFFIXES:
                    yield Found(item, "image")
                elif suffix in _VIDEO_SUFFIXES:
                    yield Found(item, "video")
                else:
                    self.skipped["not media"] += 1
        except Exception as error:  # the store failed mid-listing: one error record for it
            yield Found(RemoteObject(uri, 0, ""), None, str(storage_error(uri, error)))
            return
        if not matched:
            log.warning("%s matched no objects", uri)
            self.skipped["no match"] += 1

    def _walk(self, folder: Path, seen: set[tuple[int, ...]]) -> Iterator[Found]:
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
            for entry in listing:
                if entry.name.startswith(".") and not self.include_hidden:
                    self.skipped["hidden"] += 1
                elif _is_dir(entry):  # follows symlinks; loops are caught by `seen`
                    yield from self._walk(Path(entry.path), seen)
                elif (found := self._classify(Path(entry.path))) is not None:
                    yield found

    def _glob(self, pattern: str, seen_dirs: set[tuple[int, ...]]) -> Iterator[Found]:
        """The files ``pattern`` names (``*``, ``?``, ``[...]`` within a name; ``**`` for any
        depth), found by listing folders once each, as :meth:`_walk` does."""
        parts = Path(pattern).parts
        first = next(i for i, part in enumerate(parts) if glob.has_magic(part))
        root = Path(*parts[:first]) if first else Path()
        if root.is_dir():
            yield from self._match(root, parts[first:], seen_dirs, set())

    def _match(
        self, folder: Path, parts: tuple[str, ...], seen_dirs: set[tuple[int, ...]],
        seen: set[tuple[int, ...]],
    ) -> Iterator[Found]:  # fmt: skip
        part, rest = parts[0], parts[1:]
        if part == "**" and not rest:
            yield from self._walk(folder, seen_dirs)  # "ads/**": everything under ads
            return
        if not glob.has_magic(part):
            child = folder / part
            if rest and child.is_dir():
                yield from self._match(child, rest, seen_dirs, seen)
            elif not rest and (child.exists() or child.is_symlink()):
                yield from self._matched(child, seen_dirs)
            return
        if part == "**":
            try:
                info = folder.stat()
            except OSError:
                return
            key = (info.st_dev, info.st_ino, len(parts))  # each folder once per position
            if key in seen:
                self.skipped["symlink loop"] += 1
                return
            seen.add(key)
            yield from self._match(folder, rest, seen_dirs, seen)  # zero folders deep
        try:
            listing = os.scandir(folder)
        except OSError as error:
            yield Found(folder, None, f"cannot list folder {folder}: {error.strerror}; check its "
                        "permissions")  # fmt: skip
            return
        with listing:
            for entry in listing:
                hidden = entry.name.startswith(".") and not part.startswith(".")
                if hidden and not self.include_hidden:
                    continue
                # A folder this glob already walked whole (it matched) holds nothing new.
                if part == "**":
                    if _is_dir(entry) and _identity(Path(entry.path)) not in seen_dirs:
                        yield from self._match(Path(entry.path), parts, seen_dirs, seen)
                elif fnmatch.fnmatchcase(entry.name, part):
                    if not rest:
                        yield from self._matched(Path(entry.path), seen_dirs)
                    elif _is_dir(entry) and _identity(Path(entry.path)) not in seen_dirs:
                        yield from self._match(Path(entry.path), rest, seen_dirs, seen)

    def _matched(self, path: Path, seen_dirs: set[tuple[int, ...]]) -> Iterator[Found]:
        if path.is_dir():
            if _identity(path) not in seen_dirs:  # matched again through "**": no recount
                yield from self._walk(path, seen_dirs)
        elif (found := self._classify(path)) is not None:
            yield found

    def _classify(self, path: Path, *, named: bool = False) -> Found | None:
        """What ``path`` is; None when it is skipped (counted). ``named``: given by the user
        (on the command line or in a list), so a special file is an error, not a skip."""
        try:
            mode = os.stat(path).st_mode
        except OSError as error:
            return Found(path, None, _unreadable(path, error))
        if not stat.S_ISREG(mode):
            what = _SPECIAL_FILES.get(stat.S_IFMT(mode), "not a regular file")
            if named:
                return Found(path, None, f"{path} is {what}, not a regular file; give the media "
                             "file itself")  # fmt: skip
            self.skipped["not a regular file"] += 1
            return None
        try:
            fd = _open_checked(path)
            try:
                head = _read_head(fd, HEAD_BYTES)
            finally:
                os.close(fd)
        except OSError as error:
            return Found(path, None, _unreadable(path, error))
        suffix = path.suffix.lower()
        if _is_svg(head, suffix):
            return Found(path, "image", f"{path} is an SVG (vector) image; babelcap captions "
                         "raster images: convert it first (e.g. rsvg-convert -o "
                         f"{path.with_suffix('.png').name} {path.name})")  # fmt: skip
        kind = sniff(head, suffix)
        if kind is None and (suffix in _IMAGE_SUFFIXES or suffix in _VIDEO_SUFFIXES):
            what = "empty" if not head else "not a known image or video format"
            return Found(path, "image" if suffix in _IMAGE_SUFFIXES else "video",
                         f"{path} is named like media but its content is {what}; "
                         "is the file complete?")  # fmt: skip
        if kind is None:
            self.skipped["not media"] += 1
            return None
        return Found(path, kind)


def _identity(folder: Path) -> tuple[int, ...] | None:
    try:
        info = folder.stat()
    except OSError:
        return None
    return (info.st_dev, info.st_ino)


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:  # a symlink loop or a vanished entry: classified as a file, with its error
        return False


def _unreadable(path: Path, error: OSError) -> str:
    if error.errno == errno.ENOENT:
        return f"{path} is a broken symlink or vanished; fix or remove it"
    if error.errno == errno.ELOOP:
        return f"{path} is a symlink loop (it points back to itself); fix or remove it"
    if error.errno in (errno.EACCES, errno.EPERM):
        return f"cannot read {path}: {error.strerror}; check its permissions"
    return f"cannot read {path}: {error.strerror}"


def read_file_list(path: Path) -> Iterator[str]:
    """Paths listed one per line in ``path`` (``-`` is not special here); blanks and # skipped.
    ``path`` may be a pipe (``--files-from <(find ...)``): it is read line by line."""
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if line and not line.startswith("#"):
                yield line
