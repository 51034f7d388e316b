"""Discovery: lazy, content-sniffed, and never stopped by a bad entry."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import time
import types

import numpy as np
import pytest
from PIL import Image

from babelcap.benchmarks.synthetic import write_image, write_video
from babelcap.client.discover import HEAD_BYTES, Walk, pillow_format, read_file_list, sniff
from tests.media_fixtures import loop_tree, make_fifo, make_socket, unprivileged


@pytest.fixture
def tree(tmp_path):
    write_image(tmp_path / "a.jpg", (32, 32))
    write_image(tmp_path / "no-extension", (32, 32), format="PNG")  # content decides
    (tmp_path / "sub").mkdir()
    write_image(tmp_path / "sub" / "b.webp", (32, 32), format="WEBP")
    write_video(tmp_path / "sub" / "c.mkv", [(255, 0, 0)])
    write_image(tmp_path / ".hidden.jpg", (32, 32))
    (tmp_path / "notes.txt").write_text("not media", encoding="utf-8")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "sub" / "loop").symlink_to(tmp_path)
    (tmp_path / "dangling.jpg").symlink_to(tmp_path / "gone.jpg")
    return tmp_path


def test_walk_classifies_by_content_and_counts_what_it_skips(tree):
    walk = Walk([tree])
    found = {p.path.name: (p.kind, p.error) for p in walk}
    assert found["a.jpg"] == ("image", None)
    assert found["no-extension"] == ("image", None)
    assert found["b.webp"] == ("image", None)
    assert found["c.mkv"] == ("video", None)
    kind, error = found["empty.png"]
    assert kind == "image" and "content is empty" in error
    assert "broken symlink" in found["dangling.jpg"][1]
    assert ".hidden.jpg" not in found and "notes.txt" not in found
    assert walk.skipped == {"hidden": 1, "not media": 1, "symlink loop": 1}


def test_hidden_files_on_request_globs_and_missing_paths(tree):
    names = {p.path.name for p in Walk([tree], include_hidden=True)}
    assert ".hidden.jpg" in names
    globbed = [p.path.name for p in Walk([str(tree / "**" / "*.mkv")])]
    assert globbed == ["c.mkv"]
    missing = list(Walk([tree / "nope.jpg"]))
    assert missing[0].kind is None and "does not exist" in missing[0].error


_WALK = (
    "import json, sys; from babelcap.client.discover import Walk; walk = Walk(sys.argv[1:]); "
    "found = [[f.path.name, f.kind, f.error] for f in walk]; "
    "print(json.dumps({'found': found, 'skipped': walk.skipped}))"
)


def _walk_as(prefix, *sources):
    result = subprocess.run([*prefix, sys.executable, "-c", _WALK, *map(str, sources)],
                            capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    return json.loads(result.stdout)


@pytest.mark.timeout(120)
def test_unreadable_file_is_an_error_not_a_crash(tree):
    # CI runs as root, which reads every file: drop the capabilities that allow it.
    prefix = unprivileged()
    if prefix is None:
        pytest.skip("running as root, and setpriv cannot drop CAP_DAC_OVERRIDE here")
    (tree / "a.jpg").chmod(0)
    (tree / "sub").chmod(0)
    try:
        result = _walk_as(prefix, tree)
    finally:
        (tree / "sub").chmod(0o755)
    found = {name: [kind, error] for name, kind, error in result["found"]}
    assert found["a.jpg"][0] is None
    assert "cannot read" in found["a.jpg"][1] and "check its permissions" in found["a.jpg"][1]
    assert "cannot list folder" in found["sub"][1]
    assert found["no-extension"] == ["image", None]  # the rest is still found


@pytest.mark.timeout(30)
def test_special_files_are_never_opened(tmp_path):
    make_fifo(tmp_path / "pipe.mp4")  # opening it would block until someone writes
    make_socket(tmp_path / "control.sock")
    (tmp_path / "zero.jpg").symlink_to("/dev/zero")  # reading it would never end
    write_image(tmp_path / "a.jpg", (8, 8))
    walk = Walk([tmp_path])
    assert [f.path.name for f in walk] == ["a.jpg"]
    assert walk.skipped == {"not a regular file": 3}
    globbed = Walk([str(tmp_path / "*.*")])
    assert [f.path.name for f in globbed] == ["a.jpg"]
    # Named on the command line, each is an error record, still without being opened.
    named = list(Walk([tmp_path / "pipe.mp4", tmp_path / "control.sock", tmp_path / "zero.jpg"]))
    assert [f.kind for f in named] == [None, None, None]
    assert "is a named pipe (FIFO), not a regular file" in named[0].error
    assert "is a socket" in named[1].error and "is a character device" in named[2].error


@pytest.mark.timeout(30)
def test_a_glob_over_symlink_loops_finishes_and_finds_each_file_once(tmp_path):
    root = loop_tree(tmp_path / "tree")
    started = time.monotonic()
    found = [f.path for f in Walk([str(root / "**" / "*.jpg")])]
    assert found == [root / "a" / "photo.jpg"]  # Python's glob: about 2^40 paths
    assert [f.path for f in Walk([root])] == found
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    "pattern",
    ["**/*.jpg", "*/*.png", "sub*/**/*.png", "[ab]*.jpg", "a?.jpg", "*", "**/deep/*.jpg",
     "sub/*", "**/*"],
)  # fmt: skip
def test_globs_match_what_pythons_glob_matches(tmp_path, pattern):
    for name in ["a1.jpg", "b.jpg", "c.png", "sub/x.png", "sub/deep/y.jpg", "sub2/z.png",
                 ".hidden/h.jpg", "sub/.h.png", "sub/deep/deeper/deep/w.jpg"]:  # fmt: skip
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        write_image(tmp_path / name, (8, 8), format="PNG" if name.endswith("png") else "JPEG")
    text = str(tmp_path / pattern)
    walked = sorted(str(f.path) for f in Walk([text]))
    matched = set()
    for name in glob.glob(text, recursive=True):
        if os.path.isdir(name):  # a matched folder is walked (hidden files skipped)
            matched |= {str(f.path) for f in Walk([name])}
        else:
            matched.add(name)
    assert walked == sorted(matched)


def test_a_file_symlink_loop_is_named_as_such(tmp_path):
    (tmp_path / "a.jpg").symlink_to(tmp_path / "b.jpg")
    (tmp_path / "b.jpg").symlink_to(tmp_path / "a.jpg")
    errors = {f.path.name: f.error for f in Walk([tmp_path])}
    assert errors.keys() == {"a.jpg", "b.jpg"}
    assert all("symlink loop" in e and "permission" not in e for e in errors.values())


def test_an_svg_is_a_clear_error_record(tmp_path):
    (tmp_path / "logo.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"/>', "utf-8")
    (tmp_path / "drawing").write_text('<?xml version="1.0"?>\n<svg/>', "utf-8")
    found = {f.path.name: f for f in Walk([tmp_path])}
    for name in ("logo.svg", "drawing"):
        assert found[name].kind == "image"
        assert "SVG" in found[name].error and "convert it first" in found[name].error


@pytest.mark.parametrize(
    ("fmt", "suffix", "mode"),
    [("ICO", ".ico", "RGBA"), ("PPM", ".ppm", "RGB"), ("PPM", ".pgm", "L"), ("PPM", ".pbm", "1"),
     ("TGA", ".tga", "RGB"), ("PCX", ".pcx", "RGB"), ("SGI", ".sgi", "RGB"),
     ("QOI", ".qoi", "RGB"), ("DDS", ".dds", "RGB"), ("XBM", ".xbm", "1"),
     ("MSP", ".msp", "1"), ("DIB", ".dib", "RGB"), ("SPIDER", ".spi", "F"),
     ("JPEG2000", ".jp2", "RGB"), ("TIFF", ".tif", "RGB"), ("WEBP", ".webp", "RGB"),
     ("AVIF", ".avif", "RGB"), ("GIF", ".gif", "P"), ("BMP", ".bmp", "RGB")],
)  # fmt: skip
def test_sniffing_agrees_with_what_pillow_identifies(tmp_path, fmt, suffix, mode):
    path = tmp_path / f"image{suffix}"
    Image.new(mode, (48, 48)).save(path, fmt)
    with Image.open(path) as image:
        identified = image.format
    head = path.read_bytes()[:HEAD_BYTES]
    if fmt != "SPIDER":  # Pillow registers no suffix for SPIDER: too weak to trust alone
        assert sniff(head, suffix) == "image"
        assert [f.kind for f in Walk([path])] == ["image"]
    assert identified == (pillow_format(head, suffix) or identified)
    renamed = path.rename(tmp_path / "no-suffix")
    weak = fmt in {"TGA", "PCX", "SGI", "DIB", "SPIDER"}
    assert sniff(renamed.read_bytes()[:HEAD_BYTES]) == (None if weak else "image")


def test_random_bytes_are_not_images():
    rng = np.random.default_rng(7)
    for _ in range(300):
        head = rng.integers(0, 256, HEAD_BYTES, dtype=np.uint8).tobytes()
        assert sniff(head, ".bin") is None


def test_every_listed_image_suffix_is_one_pillow_reads():
    from babelcap.client import discover

    Image.init()
    readable = {s for s, f in Image.registered_extensions().items() if f in Image.OPEN}
    plugins = {".heic", ".heif", ".jxl"}  # pillow-heif, a JPEG XL plugin
    assert discover._IMAGE_SUFFIXES - readable - plugins == {".svg", ".svgz"}  # error records


def test_walk_is_lazy(tmp_path):
    for i in range(50):
        write_image(tmp_path / f"{i:03}.png", (4, 4), format="PNG")
    walk = iter(Walk([tmp_path]))
    assert isinstance(walk, types.GeneratorType)  # files are found as they are consumed
    assert next(walk).kind == "image"


def test_file_list(tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text("# comment\n\n/a/b.jpg\n  /c.mp4 \n", encoding="utf-8")
    assert list(read_file_list(listing)) == ["/a/b.jpg", "/c.mp4"]


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"\xff\xd8\xff\xe0", "image"),
        (b"\x89PNG\r\n\x1a\n", "image"),
        (b"GIF89a", "image"),
        (b"RIFF\0\0\0\0WEBP", "image"),
        (b"\0\0\0\x1cftypheic", "image"),
        (b"\0\0\0\x1cftypavif", "image"),
        (b"\0\0\0\x1cftypisom", "video"),
        (b"\x1a\x45\xdf\xa3", "video"),
        (b"RIFF\0\0\0\0AVI ", "video"),
        (bytes([0x47] + [0] * 187) * 3, "video"),
        (b"\0\0\1\0\1\0\x10\x10\0\0\1\0\x20\0\x68\x04\0\0\x16\0\0\0", "image"),  # ICO
        (b"P6\n48 48\n255\n", "image"),
        (b"hello world", None),
        (b"", None),
    ],
)
def test_sniff(head, kind):
    assert sniff(head) == kind
