"""Defaults declared once. Settings models take their field defaults from here; nothing else
repeats these numbers."""

from __future__ import annotations

__all__ = [
    "BACKEND_KEEP_ALIVE_S",
    "BODY_IDLE_TIMEOUT_S",
    "BODY_READ_TIMEOUT_S",
    "CACHE_DIR_NAME",
    "CACHE_DIR_VARIABLE",
    "CHAT_MAX_BODY_BYTES",
    "HEADER_TIMEOUT_S",
    "IMAGE_MAX_TILES",
    "IMAGE_TILE_SIZE",
    "JPEG_QUALITY",
    "MAX_PIXELS",
    "MAX_RETRIES",
    "NLLB_QUANTIZATION",
    "REQUEST_TIMEOUT_S",
    "SERVER_URL",
    "STARTUP_TIMEOUT_S",
    "TRANSLATION_MAX_BODY_BYTES",
    "TRANSLATION_MAX_CHARS",
    "TRANSLATION_MAX_SENTENCES",
    "TRANSLATION_MODEL_ID",
    "UNAVAILABLE_TIMEOUT_S",
    "VIDEO_FRAMES",
    "VIDEO_FRAME_SIZE",
]

# Media hints: what the real models' processors keep (Llama 3.2 Vision: 560 px tiles, at most 4;
# LLaVA-NeXT-Video: 8 frames of 336 px). Servers list their own under /v1/models.
IMAGE_TILE_SIZE = 560
IMAGE_MAX_TILES = 4
VIDEO_FRAMES = 8
VIDEO_FRAME_SIZE = 336

#: Images with more pixels are refused before decoding (decompression bombs).
MAX_PIXELS = 90_000_000
#: Quality of the JPEGs sent to the models.
JPEG_QUALITY = 90

#: Limit for one HTTP request (a long generation included), client and gateway alike.
REQUEST_TIMEOUT_S = 600.0
#: Retries of one request that failed with 408, 409, 429, 500 or a timeout.
MAX_RETRIES = 6
#: A client stops its run when no server has answered for this long.
UNAVAILABLE_TIMEOUT_S = 300.0
#: How long to wait for a started server's /health: a real 11B model loads in minutes.
STARTUP_TIMEOUT_S = 900.0
#: How long vLLM's HTTP server (and babelcap's) keep an idle connection open. vLLM's own default
#: is 5 s; clients (httpx: 5 s) and the gateway's pool (this minus 15 s) always close first, so
#: no request goes out on a connection the server is closing at that moment.
BACKEND_KEEP_ALIVE_S = 75
#: A client must send its request's headers within this long of its first byte (or of
#: connecting), else the connection is closed: a client sending 1 byte a second holds nothing.
HEADER_TIMEOUT_S = 30.0
#: Each part of a request body must arrive within this long, the whole body within the second
#: (408 otherwise).
BODY_IDLE_TIMEOUT_S = 30.0
BODY_READ_TIMEOUT_S = 120.0

#: The id /v1/models lists for the translator when a profile names none.
TRANSLATION_MODEL_ID = "nllb"
#: Largest chat request body the gateway accepts (images and frames inline as data URLs).
CHAT_MAX_BODY_BYTES = 64 * 2**20
#: Largest body a translation route accepts (the gateway's and the stand-alone server's).
TRANSLATION_MAX_BODY_BYTES = 1_000_000
#: Most characters one translation request may carry, all its texts together (LibreTranslate's
#: "char limit"): segmenting is CPU work done before any limit on sentences can be counted.
TRANSLATION_MAX_CHARS = 200_000
#: Most sentences x target languages one translation request may ask for (each over-long sentence
#: counts once per piece it is split into): it bounds the work and memory one request can take.
TRANSLATION_MAX_SENTENCES = 50_000

#: Where clients look for a babelcap server by default.
SERVER_URL = "http://127.0.0.1:8000"

#: The environment variable that names babelcap's own cache (NLLB converted to CTranslate2).
CACHE_DIR_VARIABLE = "BABELCAP_CACHE"
#: That cache's folder under $XDG_CACHE_HOME (else ~/.cache) when the variable is unset.
CACHE_DIR_NAME = "babelcap"
#: The CTranslate2 weight type NLLB is converted to when a profile's compute type is "default".
NLLB_QUANTIZATION = "int8"
