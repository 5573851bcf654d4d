"""One TorchServe request (its input dict and headers) -> the image bytes and options.

Three request forms reach the handler (see SPEC): multipart with a ``file`` field and an
optional ``top_k`` field; a raw image body; a JSON object ``{"image": b64, "top_k": n}``.
``top_k`` may also come as the query parameter, which the proxy carries in the
``X-Top-K`` header because TorchServe drops query strings. A body field wins over the query.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any, Mapping

from handler.errors import InvalidImage, InvalidJson, InvalidTopK, MissingImage

TOP_K_HEADER = "x-top-k"
REQUEST_ID_HEADER = "x-request-id"
HEALTH_PROBE_HEADER = "x-health-probe"
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_DATA_URL_PREFIX = re.compile(r"^data:[\w/+.-]*;base64,", re.IGNORECASE)


@dataclass(frozen=True)
class ParsedRequest:
    """What the pipeline needs from one request."""

    image_bytes: bytes
    top_k: int
    source: str  # "multipart" | "raw" | "json" (for logs)


def normalise_headers(raw: Mapping[str, Any] | None) -> dict[str, str]:
    """Lower-case header names; drop TorchServe's per-field entries (dict values)."""
    return {str(k).lower(): v for k, v in (raw or {}).items() if isinstance(v, str)}


def request_id_from(headers: Mapping[str, str], fallback: str) -> str:
    """The proxy's X-Request-ID if it looks sane, else TorchServe's own id."""
    candidate = headers.get(REQUEST_ID_HEADER, "")
    return candidate if _SANE_REQUEST_ID.match(candidate) else fallback


def is_health_probe(headers: Mapping[str, str]) -> bool:
    return headers.get(HEALTH_PROBE_HEADER) == "1"


def parse_top_k(value: Any, max_k: int) -> int:
    """An integer in 1..max_k, given as an int or a string of digits; anything else is invalid."""
    if isinstance(value, bool):
        raise InvalidTopK()
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        text = value.strip()
        if not re.fullmatch(r"[+-]?\d{1,7}", text):
            raise InvalidTopK(f"top_k must be an integer between 1 and {max_k}, got {text[:20]!r}.")
        value = int(text)
    if not isinstance(value, int):
        raise InvalidTopK(f"top_k must be an integer between 1 and {max_k}.")
    if not 1 <= value <= max_k:
        raise InvalidTopK(f"top_k must be between 1 and {max_k}, got {value}.")
    return value


def parse_request(
    data: Mapping[str, Any], headers: Mapping[str, str], default_top_k: int, max_k: int
) -> ParsedRequest:
    """Find the image and top_k in one request, or raise a typed error."""
    query_top_k = headers.get(TOP_K_HEADER)
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()

    if content_type == "multipart/form-data" or "file" in data:
        image = _as_bytes(data.get("file"))
        if not image:
            raise MissingImage("No image: send it in the multipart field 'file'.")
        field_top_k = data.get("top_k")
        top_k = _resolve_top_k(field_top_k, query_top_k, default_top_k, max_k)
        return ParsedRequest(image_bytes=image, top_k=top_k, source="multipart")

    body = data.get("body", data.get("data"))
    if content_type == "application/json" or content_type.endswith("+json") or isinstance(body, (dict, list)):
        document = _parse_json(body)
        image = _decode_base64_image(document.get("image"))
        top_k = _resolve_top_k(document.get("top_k"), query_top_k, default_top_k, max_k)
        return ParsedRequest(image_bytes=image, top_k=top_k, source="json")

    image = _as_bytes(body)
    if not image:
        raise MissingImage("No image: the request body is empty.")
    top_k = _resolve_top_k(None, query_top_k, default_top_k, max_k)
    return ParsedRequest(image_bytes=image, top_k=top_k, source="raw")


def _resolve_top_k(field_value: Any, query_value: str | None, default: int, max_k: int) -> int:
    # An invalid ?top_k= is an error even when the body also gives one (the body's value wins).
    query_top_k = parse_top_k(query_value, max_k) if query_value else None
    if field_value is not None and field_value != b"" and field_value != "":
        return parse_top_k(field_value, max_k)
    return query_top_k if query_top_k is not None else default


def _as_bytes(value: Any) -> bytes:
    if value is None:
        return b""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        # TorchServe decodes text/* bodies to str unless TS_DECODE_INPUT_REQUEST=false.
        return value.encode("utf-8", errors="surrogateescape")
    raise MissingImage("No image found in the request.")


def _parse_json(body: Any) -> dict:
    if isinstance(body, dict):
        return body  # already decoded by TorchServe (TS_DECODE_INPUT_REQUEST unset)
    if isinstance(body, list):
        raise InvalidJson('The JSON body must be an object like {"image": "<base64>", "top_k": 5}.')
    raw = _as_bytes(body)
    if not raw.strip():
        raise MissingImage("No image: the JSON body is empty.")
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise InvalidJson("The request body is not valid JSON.") from exc
    if not isinstance(document, dict):
        raise InvalidJson('The JSON body must be an object like {"image": "<base64>", "top_k": 5}.')
    return document


def _decode_base64_image(value: Any) -> bytes:
    if value is None or value == "":
        raise MissingImage('No image: the JSON body needs an "image" field with base64 data.')
    if not isinstance(value, str):
        raise InvalidJson('The "image" field must be a base64 string.')
    text = _DATA_URL_PREFIX.sub("", value.strip(), count=1)
    text = re.sub(r"\s+", "", text)
    try:
        decoded = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidImage('The "image" field is not valid base64.') from exc
    if not decoded:
        raise MissingImage('No image: the "image" field decodes to 0 bytes.')
    return decoded
