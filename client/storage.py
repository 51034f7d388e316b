"""Media and results in object storage: ``s3://``, ``gs://`` and any other fsspec protocol.

A URI names an object, a prefix (every object under it, at any depth) or a glob
(``s3://bucket/ads/**/*.jpg``). Listing is a stream of pages (S3's ``list_objects_v2`` pages
through s3fs, other stores through fsspec's ``walk``), so a million objects cost the memory of
one page. An object's kind comes from its name at listing time (the content is checked when it
is read); its resume identity comes from the listing too (ETag or generation, and size), so an
object is never downloaded to decide that it was already captioned.

Credentials come only from each store's standard environment and files (``AWS_*``, ``~/.aws``,
``GOOGLE_APPLICATION_CREDENTIALS``...), never from flags, and are never logged. ``file://`` URIs
are plain local paths (the local walk, with its checks for FIFOs and devices, handles them).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from babelcap.core.errors import ConfigurationError, MediaDecodeError

__all__ = [
    "RemoteObject",
    "check_readable",
    "filesystem",
    "is_uri",
    "list_objects",
    "local_path",
    "open_object",
    "probe",
    "storage_error",
]

log = logging.getLogger(__name__)
# Which credential source was used is not news at INFO, in every decoding worker.
for _name in ("botocore", "aiobotocore", "s3fs"):
    logging.getLogger(_name).setLevel(logging.WARNING)

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
_MAGIC = re.compile(r"[*?[]")
#: Objects listed per page (S3's own maximum).
PAGE = 1000
#: Bytes fetched per ranged read of an object being decoded.
BLOCK_BYTES = 1 << 20
_PACKAGES = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs",
             "abfs": "adlfs"}  # fmt: skip


@dataclass(frozen=True)
class RemoteObject:
    """One listed object: its URI, size and version (ETag, generation or modification time)."""

    uri: str
    size: int
    version: str

    @property
    def name(self) -> str:
        """The object's last path component (its file name)."""
        return self.uri.rstrip("/").rsplit("/", 1)[-1]

    @property
    def suffix(self) -> str:
        name = self.name
        return name[name.rfind(".") :].lower() if "." in name else ""

    @property
    def identity(self) -> str:
        """What resume compares: the version and the size, known without reading the object."""
        return f"{self.version}/{self.size}"

    def __str__(self) -> str:
        return self.uri


def is_uri(text: str) -> bool:
    """Whether ``text`` is a URI with a scheme (``s3://``, ``file://``...), not a local path."""
    return _SCHEME.match(text) is not None


def local_path(text: str) -> str | None:
    """The local path of a ``file://`` URI; None for other URIs and plain paths."""
    if text.lower().startswith("file://"):
        return text[len("file://") :] or "/"
    return None


def filesystem(uri: str) -> tuple[Any, str]:
    """The fsspec file system for ``uri`` and the path within it; a missing protocol package
    or an unknown protocol is a :class:`ConfigurationError` naming the fix."""
    import fsspec.core

    typed = uri.split("://", 1)[0]
    scheme = typed.lower()
    try:
        # "S3://" is "s3://": fsspec knows its protocols in lower case only.
        found: tuple[Any, str] = fsspec.core.url_to_fs(scheme + uri[len(typed) :])
    except ImportError as error:
        package = _PACKAGES.get(scheme, f"the fsspec package for {scheme}://")
        raise ConfigurationError(
            f"{uri}: reading {scheme}:// needs {package}: pip install 'babelcap[storage]'"
            + ("" if scheme in ("s3", "s3a") else f" {package}")
        ) from error
    except ValueError as error:
        raise ConfigurationError(f"{uri}: {error}; give s3://, gs:// or file:// URIs") from error
    if scheme in _PACKAGES and not found[1].split("/", 1)[0]:
        # "s3://" or "s3:///x": botocore would answer with a multi-line regex.
        raise ConfigurationError(f"{uri}: no bucket named; give {scheme}://BUCKET/PREFIX")
    return found


def storage_error(uri: str, error: BaseException) -> ConfigurationError:
    """One line saying why ``uri`` cannot be reached, without the credentials involved."""
    name = type(error).__name__
    text = str(error)
    if name in ("NoCredentialsError", "PartialCredentialsError") or any(
        word in text
        for word in (
            "credentials",
            "InvalidAccessKeyId",
            "SignatureDoesNotMatch",
            "ExpiredToken",
            "InvalidToken",
        )
    ):
        why = ("no valid credentials: set them the store's standard way (for S3: "
               "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or ~/.aws)")  # fmt: skip
    elif isinstance(error, PermissionError) or "AccessDenied" in text or "Forbidden" in text:
        why = "access denied: the credentials lack read (or list) permission on it"
    elif isinstance(error, FileNotFoundError) or "NoSuchBucket" in text:
        why = "no such bucket or prefix"
    elif name in ("EndpointConnectionError", "ConnectTimeoutError", "ClientConnectorError") or (
        isinstance(error, OSError) and "connect" in text.lower()
    ):
        why = "the storage endpoint cannot be reached (check AWS_ENDPOINT_URL and the network)"
    else:
        why = f"{name}: {text.splitlines()[0] if text else 'no detail'}"
    return ConfigurationError(f"{uri}: {why}")


def _split_glob(path: str, uri: str) -> tuple[str, re.Pattern[str] | None]:
    """The prefix to list and the pattern its keys must match (None: every key)."""
    if not _MAGIC.search(path):
        return path, None
    import fsspec.utils

    parts = path.split("/")
    first = next(i for i, part in enumerate(parts) if _MAGIC.search(part))
    if first == 0:
        raise ConfigurationError(
            f"{uri}: a pattern in the bucket name is not supported; name one bucket"
        )
    prefix = "/".join(parts[:first])
    return prefix, re.compile(fsspec.utils.glob_translate(path))


def _hidden(key: str, base: str) -> bool:
    rest = key[len(base) :] if key.startswith(base) else key
    return any(part.startswith(".") for part in rest.split("/") if part)


def _version(entry: dict[str, Any]) -> str:
    for key, label in (("ETag", "etag"), ("etag", "etag"), ("generation", "generation"),
                       ("md5Hash", "md5"), ("mtime", "mtime"), ("LastModified", "modified"),
                       ("last_modified", "modified"), ("created", "created")):  # fmt: skip
        value = entry.get(key)
        if value not in (None, ""):
            return f"{label}:{str(value).strip(chr(34))}"
    return "unversioned"


def _pages(fs: Any, path: str) -> Iterator[list[dict[str, Any]]]:
    """Every object under ``path``, page by page (S3: ``list_objects_v2`` pages; others:
    fsspec's ``walk``, one folder at a time)."""
    iterdir = getattr(fs, "_iterdir", None)
    if iterdir is not None and getattr(fs, "protocol", None) and "s3" in fs.protocol:
        import fsspec.asyn

        bucket, _, key = path.partition("/")
        pages = iterdir(bucket, delimiter="", prefix=key)

        async def take() -> list[dict[str, Any]]:
            page: list[dict[str, Any]] = []
            try:
                while len(page) < PAGE:
                    page.append(await pages.__anext__())
            except StopAsyncIteration:
                pass
            return page

        while page := fsspec.asyn.sync(fs.loop, take):
            yield [entry for entry in page if entry.get("type") != "directory"]
        return
    for _root, _dirs, files in fs.walk(path, detail=True):
        yield list(files.values())


def _info(fs: Any, path: str) -> dict[str, Any] | None:
    try:
        info: dict[str, Any] = fs.info(path)
    except FileNotFoundError:
        return None
    return info


def list_objects(uri: str, *, include_hidden: bool = False) -> Iterator[RemoteObject]:
    """The objects ``uri`` names (an object, a prefix or a glob), streamed page by page;
    hidden names (a component starting with ``.``) are left out unless ``include_hidden``.
    A glob that matches nothing is taken literally (``s3://b/[2024]/``: a prefix whose name
    holds pattern characters), as a shell leaves an unmatched pattern as it is."""
    fs, path = filesystem(uri)
    scheme = uri.split("://", 1)[0]
    prefix, pattern = _split_glob(path, uri)
    if pattern is not None:
        matched = False
        for item in _listed(fs, scheme, prefix, pattern, include_hidden):
            matched = True
            yield item
        if matched:
            return
    info = _info(fs, path)
    if info is not None and info.get("type") == "file":  # one object, named
        size = info.get("size", info.get("Size"))
        yield RemoteObject(f"{scheme}://{path}", int(size or 0), _version(info))
        return
    # A folder: not the objects beside it ("ads" != "ads2").
    yield from _listed(fs, scheme, path.rstrip("/") + "/", None, include_hidden)


def _listed(
    fs: Any, scheme: str, prefix: str, pattern: re.Pattern[str] | None, include_hidden: bool
) -> Iterator[RemoteObject]:
    base = prefix.rstrip("/") + "/"
    for page in _pages(fs, prefix):
        for entry in page:
            key = str(entry.get("name") or entry.get("Key", ""))
            if not key.strip("/") or key.endswith("/"):
                continue  # a "directory marker" object
            if pattern is not None and not pattern.match(key):
                continue
            if not include_hidden and _hidden(key, base):
                continue
            size = entry.get("size", entry.get("Size"))
            yield RemoteObject(f"{scheme}://{key}", int(size or 0), _version(entry))


def check_readable(uri: str) -> None:
    """Fail now, in one line, when ``uri``'s store cannot be listed (credentials, permissions,
    endpoint, bucket)."""
    fs, path = filesystem(uri)
    prefix, _ = _split_glob(path, uri)
    probe(uri, fs, prefix)


def probe(uri: str, fs: Any, prefix: str) -> None:
    """List the first page under ``prefix`` (``fs.exists`` would hide why it failed); any
    failure is one :class:`ConfigurationError` line."""
    try:
        next(iter(_pages(fs, prefix)), None)
    except Exception as error:  # botocore, aiohttp and fsspec errors alike: one line
        raise storage_error(uri, error) from error


def open_object(item: RemoteObject) -> IO[bytes]:
    """A seekable reader of ``item`` that fetches ranges on demand (a video's index and the
    sampled frames, not the whole file); s3fs refuses to go on if the object changed since it
    was opened (it checks the ETag on every ranged read)."""
    fs, path = filesystem(item.uri)
    handle: IO[bytes] = fs.open(path, "rb", block_size=BLOCK_BYTES, cache_type="readahead")
    # s3fs pins the ETag it sees now, not the one listed: an object overwritten in between
    # would be read as its new content under the old identity (and its record would be
    # taken as done on resume). Refuse it: this asset fails, a later run takes the new one.
    details = getattr(handle, "details", None)
    now = _version(details) if isinstance(details, dict) else item.version
    if item.version.startswith("etag:") and now.startswith("etag:") and now != item.version:
        handle.close()
        raise MediaDecodeError(
            f"{item}: the object changed after it was listed ({item.version} then {now}); run "
            "again to caption its new content"
        )
    return handle
