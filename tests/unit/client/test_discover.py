"""Discovery: lazy, content-sniffed, and never stopped by a bad entry."""

from __future__ import annotations

import os
import types

import pytest

from babelcap.benchmarks.synthetic import write_image, write_video
from babelcap.client.discover import Walk, read_file_list, sniff


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


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_unreadable_file_is_an_error_not_a_crash(tree):
    (tree / "a.jpg").chmod(0)
    found = {p.path.name: p for p in Walk([tree])}
    assert "cannot read" in found["a.jpg"].error


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
        (b"hello world", None),
        (b"", None),
    ],
)
def test_sniff(head, kind):
    assert sniff(head) == kind
