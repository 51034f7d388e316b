"""Object storage against a real S3 endpoint (moto's server on 127.0.0.1) and local folders:
listing (prefixes, globs, hidden names, paging as a stream), identities, ranged reads decoded
by the real decoders, and the one-line errors for each way a store cannot be reached."""

from __future__ import annotations

import importlib.util
import os
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from babelcap.client import storage
from babelcap.client.discover import Walk
from babelcap.client.storage import RemoteObject, check_readable, list_objects, open_object
from babelcap.core.errors import ConfigurationError, MediaDecodeError
from tests.s3_fixtures import S3Endpoint

s3fs = pytest.importorskip("s3fs")

EXAMPLES = Path(__file__).resolve().parents[3] / "babelcap" / "client" / "examples"


def _use_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    """This process's AWS settings are exactly ``env`` (s3fs reads them in-process)."""
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    s3fs.S3FileSystem.clear_instance_cache()  # fsspec caches one instance per option set


@pytest.fixture
def s3(s3_endpoint: S3Endpoint, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Endpoint]:
    _use_env(monkeypatch, s3_endpoint.env)
    yield s3_endpoint
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture
def bucket(s3: S3Endpoint) -> str:
    """A fresh bucket for one test (the endpoint is shared by the session)."""
    name = f"t-{uuid.uuid4().hex[:12]}"
    s3.make_bucket(name)
    return name


def _uris(uri: str, **options: Any) -> list[str]:
    return sorted(item.uri for item in list_objects(uri, **options))


def _put(s3: S3Endpoint, bucket: str, *keys: str, data: bytes = b"x") -> None:
    for key in keys:
        s3.upload(bucket, key, data)


# --- listing ----------------------------------------------------------------------------------


def test_a_prefix_lists_its_objects_at_any_depth_and_not_a_sibling_prefix(s3, bucket):
    _put(s3, bucket, "ads/a.jpg", "ads/deep/er/b.mp4", "ads2/c.jpg", "adsx.jpg", "top.jpg")
    inside = [f"s3://{bucket}/ads/a.jpg", f"s3://{bucket}/ads/deep/er/b.mp4"]
    assert _uris(f"s3://{bucket}/ads") == inside
    assert _uris(f"s3://{bucket}/ads/") == inside
    everything = _uris(f"s3://{bucket}")
    assert everything == _uris(f"s3://{bucket}/")
    assert len(everything) == 5


def test_one_named_object_has_the_identity_its_listing_gives(s3, bucket):
    etag = s3.upload(bucket, "ads/a.jpg", b"hello")
    _put(s3, bucket, "ads/a.jpg.bak", "ads/a.jpgx")
    [named] = list_objects(f"s3://{bucket}/ads/a.jpg")
    assert named.uri == f"s3://{bucket}/ads/a.jpg"
    assert (named.size, named.name, named.suffix) == (5, "a.jpg", ".jpg")
    assert named.version == "etag:" + etag.strip('"')
    listed = {o.uri: o for o in list_objects(f"s3://{bucket}/ads")}
    assert listed[named.uri].identity == named.identity


def test_globs_match_names_at_their_depth(s3, bucket):
    keys = ["ads/a.jpg", "ads/b.mp4", "ads/sub/c.jpg", "ads/sub/d.mp4", "ads/cx.jpg", "ad/e.jpg"]
    _put(s3, bucket, *keys)
    root = f"s3://{bucket}"
    assert _uris(f"{root}/ads/**/*.jpg") == [f"{root}/{k}" for k in sorted(keys[:5]) if "jpg" in k]
    assert _uris(f"{root}/ads/*.mp4") == [f"{root}/ads/b.mp4"]
    assert _uris(f"{root}/ads/[ab]*") == [f"{root}/ads/a.jpg", f"{root}/ads/b.mp4"]
    assert _uris(f"{root}/ads/nothing-*.jpg") == []


def test_a_prefix_whose_name_holds_pattern_characters_is_listed_literally(s3, bucket):
    _put(s3, bucket, "[2024]/a.jpg", "2/b.jpg", "q?/c.jpg")
    assert _uris(f"s3://{bucket}/[2024]") == [f"s3://{bucket}/[2024]/a.jpg"]
    assert _uris(f"s3://{bucket}/[2024]/a.jpg") == [f"s3://{bucket}/[2024]/a.jpg"]


def test_hidden_components_are_left_out_unless_asked_for(s3, bucket):
    _put(s3, bucket, "ads/a.jpg", "ads/.cache/b.jpg", "ads/.c.jpg", ".top/ads/d.jpg")
    assert _uris(f"s3://{bucket}/ads") == [f"s3://{bucket}/ads/a.jpg"]
    assert len(_uris(f"s3://{bucket}/ads", include_hidden=True)) == 3
    assert _uris(f"s3://{bucket}/ads/**/*.jpg") == [f"s3://{bucket}/ads/a.jpg"]
    # A hidden prefix named outright is listed: only what lies below it counts.
    assert _uris(f"s3://{bucket}/.top") == [f"s3://{bucket}/.top/ads/d.jpg"]


def test_directory_markers_are_skipped_and_empty_objects_listed(s3, bucket):
    _put(s3, bucket, "ads/", "ads/sub/", "/", data=b"")
    _put(s3, bucket, "ads/empty.jpg", data=b"")
    [empty] = list_objects(f"s3://{bucket}/ads")
    assert (empty.uri, empty.size) == (f"s3://{bucket}/ads/empty.jpg", 0)
    assert [o.uri for o in list_objects(f"s3://{bucket}")] == [empty.uri]


@pytest.mark.parametrize(
    "key", ["ads/x y.jpg", "ads/ünï.jpg", "ads/h#1.jpg", "ads/q?.jpg", "ads/p%20.jpg",
            "ads/a+b.jpg", "/lead.jpg", "ads//double.jpg"],
)  # fmt: skip
def test_odd_keys_are_listed_named_and_read_back_exactly(s3, bucket, key):
    s3.upload(bucket, key, key.encode())
    listed = [o for o in list_objects(f"s3://{bucket}") if o.uri == f"s3://{bucket}/{key}"]
    assert len(listed) == 1
    with open_object(listed[0]) as handle:
        assert handle.read() == key.encode()
    assert f"s3://{bucket}/{key}" in _uris(f"s3://{bucket}/{key}")


def test_an_upper_case_scheme_is_the_same_store(s3, bucket):
    _put(s3, bucket, "ads/a.jpg")
    [item] = list_objects(f"S3://{bucket}/ads")
    with open_object(item) as handle:
        assert handle.read() == b"x"


def _count_lists(fs: Any) -> list[int]:
    calls = [0]

    def seen(**_: Any) -> None:
        calls[0] += 1

    fs.s3.meta.events.register("before-call.s3.ListObjectsV2", seen)
    return calls


def test_a_listing_past_one_page_is_a_stream_of_pages(s3, bucket):
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: s3.upload(bucket, f"ads/{i:05d}.jpg", b""), range(1050)))
    uri = f"s3://{bucket}/ads"
    fs, _ = storage.filesystem(uri)
    fs.ls(f"{bucket}")  # the client exists once something was asked
    calls = _count_lists(fs)
    listing = list_objects(uri)
    first = next(listing)
    assert first.uri == f"{uri}/00000.jpg"
    assert calls[0] == 1  # the first page only: S3 gives 1000 objects a page
    rest = list(listing)
    assert len(rest) == 1049 and len({o.uri for o in rest}) == 1049
    assert calls[0] == 2


def test_identity_changes_when_an_object_is_overwritten(s3, bucket):
    s3.upload(bucket, "a.jpg", b"one")
    [before] = list_objects(f"s3://{bucket}/a.jpg")
    s3.upload(bucket, "a.jpg", b"two")
    [after] = list_objects(f"s3://{bucket}/a.jpg")
    assert before.size == after.size and before.identity != after.identity
    s3.upload(bucket, "a.jpg", b"two")
    assert next(iter(list_objects(f"s3://{bucket}"))).identity == after.identity


def test_an_object_overwritten_after_listing_fails_that_asset_with_its_uri(s3, bucket):
    s3.upload(bucket, "a.jpg", b"one")
    [listed] = list_objects(f"s3://{bucket}/a.jpg")
    s3.upload(bucket, "a.jpg", b"two")
    with pytest.raises(MediaDecodeError, match=rf"s3://{bucket}/a.jpg: the object changed"):
        open_object(listed)


def test_an_object_overwritten_while_read_in_ranges_is_refused(s3, bucket):
    s3.upload(bucket, "big.mp4", os.urandom(3 * storage.BLOCK_BYTES))
    [listed] = list_objects(f"s3://{bucket}/big.mp4")
    with open_object(listed) as handle:
        handle.read(10)
        s3.upload(bucket, "big.mp4", os.urandom(3 * storage.BLOCK_BYTES))
        handle.seek(2 * storage.BLOCK_BYTES + 5)
        with pytest.raises(OSError, match=r"big\.mp4"):
            handle.read(10)


def test_a_file_uri_lists_a_local_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.jpg").write_bytes(b"x")
    (tmp_path / ".hidden.jpg").write_bytes(b"x")
    [item] = list_objects(f"file://{tmp_path}")
    assert item.uri.endswith("/sub/a.jpg") and item.size == 1
    assert storage.local_path(f"file://{tmp_path}") == str(tmp_path)
    assert storage.is_uri("s3://b") and not storage.is_uri("ads/a.jpg")


# --- Walk and media over objects ----------------------------------------------------------------


def test_walk_skips_and_counts_non_media_and_refuses_svg(s3, bucket):
    _put(s3, bucket, "ads/a.jpg", "ads/b.MP4", "ads/notes.txt", "ads/out/part-1.jsonl",
         "ads/logo.svg", "ads/.hidden.jpg")  # fmt: skip
    walk = Walk([f"s3://{bucket}/ads"])
    found = {str(f.path): f for f in walk}
    assert set(found) == {f"s3://{bucket}/ads/{n}" for n in ("a.jpg", "b.MP4", "logo.svg")}
    assert found[f"s3://{bucket}/ads/a.jpg"].kind == "image"
    assert found[f"s3://{bucket}/ads/b.MP4"].kind == "video"
    assert "SVG" in (found[f"s3://{bucket}/ads/logo.svg"].error or "")
    assert walk.skipped["not media"] == 2 and walk.skipped["hidden"] == 1


def test_walk_gives_one_error_record_for_a_missing_bucket(s3):
    walk = Walk(["s3://no-such-bucket-here/ads"])
    [found] = list(walk)
    assert found.error == "s3://no-such-bucket-here/ads: no such bucket or prefix"


def test_real_media_decode_through_ranged_reads(s3, bucket):
    from babelcap.client.media import MediaOptions, prepare

    s3.upload(bucket, "m/red.jpg", (EXAMPLES / "red-product.jpg").read_bytes())
    s3.upload(bucket, "m/clip.mp4", (EXAMPLES / "four-colours.mp4").read_bytes())
    [clip, image] = sorted(list_objects(f"s3://{bucket}/m"), key=lambda o: o.uri)
    prepared = prepare("image", image, MediaOptions())
    assert prepared.part["type"] == "image_url" and prepared.meta["size"] == image.size
    prepared = prepare("video", clip, MediaOptions(frames=4))
    assert prepared.part["type"] == "video_url" and prepared.meta["size"] == clip.size


@pytest.mark.parametrize(
    ("content", "what"),
    [((EXAMPLES / "four-colours.mp4").read_bytes(), "video data"),
     (b"\x00garbage" * 100, "not a known media format"), (b"", "empty")],
)  # fmt: skip
def test_an_object_named_jpg_that_is_not_an_image_is_a_decode_error(s3, bucket, content, what):
    from babelcap.client.media import MediaOptions, prepare

    s3.upload(bucket, "lies.jpg", content)
    [item] = list_objects(f"s3://{bucket}/lies.jpg")
    with pytest.raises(MediaDecodeError, match=rf"^s3://{bucket}/lies.jpg is named .* {what}"):
        prepare("image", item, MediaOptions())


# --- one-line errors ------------------------------------------------------------------------------


def _one_line(error: pytest.ExceptionInfo[ConfigurationError], uri: str) -> str:
    text = str(error.value)
    assert "\n" not in text and text.startswith(f"{uri}: ")
    return text


def test_a_missing_bucket_is_one_line(s3):
    with pytest.raises(ConfigurationError) as error:
        check_readable("s3://no-such-bucket-here/ads")
    assert "no such bucket" in _one_line(error, "s3://no-such-bucket-here/ads")


def test_no_credentials_is_one_line_without_secrets(s3_endpoint, monkeypatch):
    env = {k: v for k, v in s3_endpoint.env.items() if "KEY" not in k}
    _use_env(monkeypatch, env)
    with pytest.raises(ConfigurationError) as error:
        check_readable("s3://any-bucket/ads")
    text = _one_line(error, "s3://any-bucket/ads")
    assert "no valid credentials" in text and "AWS_ACCESS_KEY_ID" in text
    s3fs.S3FileSystem.clear_instance_cache()


def test_an_unreachable_endpoint_is_one_line_and_quick(s3_endpoint, monkeypatch):
    dead = {"AWS_ENDPOINT_URL": "http://127.0.0.1:1", "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:1"}
    _use_env(monkeypatch, {**s3_endpoint.env, **dead, "AWS_MAX_ATTEMPTS": "1"})
    started = time.monotonic()
    with pytest.raises(ConfigurationError) as error:
        check_readable("s3://any-bucket/ads")
    assert "cannot be reached" in _one_line(error, "s3://any-bucket/ads")
    assert time.monotonic() - started < 20
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.mark.parametrize(
    ("uri", "says"),
    [("s3://", "no bucket named"), ("s3:///x", "no bucket named"),
     ("s3://buck*/x.jpg", "pattern in the bucket name"), ("nosuch://b/x", "Protocol not known")],
)  # fmt: skip
def test_malformed_uris_are_one_line(s3, uri, says):
    with pytest.raises(ConfigurationError) as error:
        list(list_objects(uri))
    assert says in _one_line(error, uri)


@pytest.mark.skipif(importlib.util.find_spec("gcsfs") is not None, reason="gcsfs is installed")
def test_gs_without_gcsfs_names_the_package():
    with pytest.raises(ConfigurationError, match=r"^gs://b/ads: reading gs:// needs gcsfs"):
        check_readable("gs://b/ads")


def test_storage_error_never_repeats_a_multi_line_message():
    error = storage.storage_error("s3://b/x", RuntimeError("first line\nsecret=abc"))
    assert str(error) == "s3://b/x: RuntimeError: first line"


def test_remote_object_identity_and_names():
    item = RemoteObject("s3://b/a/B.JPEG", 3, "etag:abc")
    assert (item.name, item.suffix, item.identity, str(item)) == ("B.JPEG", ".jpeg", "etag:abc/3",
                                                                  "s3://b/a/B.JPEG")  # fmt: skip
