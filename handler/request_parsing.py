"""One TorchServe request (its input dict and headers) -> the image bytes and options.

Three request forms reach the handler (config/openapi.json, docs/api.md): multipart with a ``file`` field and an
optional ``top_k`` field; a raw image body; a JSON object ``{"image": b64, "top_k": n}``.
``top_k`` may also come as the query parameter, which the proxy carries in the
``X-Top-K`` header because TorchServe drops query strings. A body field wins over the query.

Several images in one request: JSON ``{"images": [b64, ...]}``, or multipart fields
``file``, ``file_1``, ``file_2``, ... (TorchServe keeps only the last of repeated field
names, so each image needs its own name). Such a request is answered with one result per
image, in order; its images are checked one by one later, so one bad image fails alone.

KServe v1's ``{"instances": [...]}`` body (``POST /v1/models/NAME:predict``, which nginx marks with
``X-Wire-Format: v1``) is read here too (``parse_kserve_v1_body``). handler/wire_formats.py wraps both
parsers, with their formatters, as the PREDICT and KSERVE_V1 wire formats.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any, Mapping

from handler.errors import InvalidImage, InvalidJson, InvalidTopK, MissingImage, ServiceError, TooManyImages

TOP_K_HEADER = "x-top-k"
REQUEST_ID_HEADER = "x-request-id"
HEALTH_PROBE_HEADER = "x-health-probe"
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_DATA_URL_PREFIX = re.compile(r"^data:[\w/+.-]*;base64,", re.IGNORECASE)
_NUMBERED_FILE_FIELD = re.compile(r"^file_([1-9][0-9]{0,5})$")
DEFAULT_MAX_IMAGES = 16


@dataclass(frozen=True)
class ParsedRequest:
    """What the pipeline needs from one request.

    ``images`` holds one entry per image; an entry is bytes, or the typed error of that
    image alone (e.g. bad base64 in one element of ``images``), so it can fail inline.
    """

    images: tuple[bytes | ServiceError, ...]
    top_k: int
    source: str  # "multipart" | "raw" | "json" (for logs)
    multi: bool = False  # answered with a result per image ("results") instead of one body

    @property
    def image_bytes(self) -> bytes:
        """The image of a single-image request (the only form that has exactly one)."""
        first = self.images[0]
        if isinstance(first, ServiceError):
            raise first
        return first


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
        raise InvalidTopK(f"top_k must be an integer between 1 and {max_k}.")
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
    data: Mapping[str, Any], headers: Mapping[str, str], default_top_k: int, max_k: int,
    max_images: int = DEFAULT_MAX_IMAGES,
) -> ParsedRequest:
    """Find the image(s) and top_k in one request, or raise a typed error."""
    query_top_k = headers.get(TOP_K_HEADER)
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()

    numbered = _numbered_file_fields(data)
    if content_type == "multipart/form-data" or "file" in data or numbered:
        top_k = _resolve_top_k(data.get("top_k"), query_top_k, default_top_k, max_k)
        # TorchServe's own examples name the field "data" (curl -F data=@img): an alias of "file".
        first = "file" if "file" in data or content_type != "multipart/form-data" or "data" not in data else "data"
        if not numbered:
            image = _as_bytes(data.get(first))
            if not image:
                raise MissingImage("No image: send it in the multipart field 'file' (or 'data').")
            return ParsedRequest(images=(image,), top_k=top_k, source="multipart")
        fields = ([first] if first in data else []) + [name for _, name in numbered]
        _check_count(len(fields), max_images, "multipart fields file, file_1, file_2, ...")
        images = tuple(_as_bytes(data.get(name)) or MissingImage(f"No image in the multipart field {name!r}.")
                       for name in fields)
        return ParsedRequest(images=images, top_k=top_k, source="multipart", multi=True)

    body = data.get("body", data.get("data"))
    if content_type == "application/json" or content_type.endswith("+json") or isinstance(body, (dict, list)):
        document = _parse_json(body)
        top_k = _resolve_top_k(document.get("top_k"), query_top_k, default_top_k, max_k)
        if "images" in document:
            if "image" in document:
                raise InvalidJson('Send either "image" (one) or "images" (a list), not both.')
            return ParsedRequest(images=_decode_image_list(document["images"], max_images), top_k=top_k,
                                 source="json", multi=True)
        image = _decode_base64_image(document.get("image"))
        return ParsedRequest(images=(image,), top_k=top_k, source="json")

    image = _as_bytes(body)
    if not image:
        raise MissingImage("No image: the request body is empty.")
    top_k = _resolve_top_k(None, query_top_k, default_top_k, max_k)
    return ParsedRequest(images=(image,), top_k=top_k, source="raw")


def parse_kserve_v1_body(data: Mapping[str, Any], default_top_k: int, max_k: int,
                         max_images: int = DEFAULT_MAX_IMAGES) -> ParsedRequest:
    """A KServe v1 predict request as it reaches the worker: its JSON body (bytes, as TorchServe
    passes it on with TS_DECODE_INPUT_REQUEST=false, or a dict already decoded) holding
    ``{"instances": [...]}``. Each request of a TorchServe batch is read on its own, so dynamic
    batching keeps one answer per request."""
    body = data.get("body", data.get("data"))
    if isinstance(body, dict):
        document = body
    elif isinstance(body, list):
        raise InvalidJson(f"The body must be a JSON object {_KSERVE_V1_BODY}.")
    else:
        raw = _as_bytes(body)
        if not raw.strip():
            raise MissingImage(f"No image: the request body is empty; send {_KSERVE_V1_BODY}.")
        try:
            document = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise InvalidJson("The request body is not valid JSON.") from exc
        if not isinstance(document, dict):
            raise InvalidJson(f"The body must be a JSON object {_KSERVE_V1_BODY}.")
    return parse_kserve_instances(document.get("instances"), default_top_k, max_k, max_images)


_KSERVE_V1_BODY = '{"instances": [{"data": "<base64 image>"}, ...]}'


def parse_kserve_instances(instances: Any, default_top_k: int, max_k: int,
                           max_images: int = DEFAULT_MAX_IMAGES) -> ParsedRequest:
    """The ``instances`` of a KServe v1 request: each one image, as ``{"data": b64}``,
    ``{"b64": b64}``, ``{"image": b64}``, ``{"data": {"b64": b64}}`` or a bare base64 string.
    An instance's ``top_k`` applies to the whole request (the first one given wins), else the
    default."""
    if instances is None:
        raise MissingImage(f"No image: a KServe v1 request needs {_KSERVE_V1_BODY}.")
    if not isinstance(instances, list):
        raise InvalidJson('"instances" must be a list.')
    _check_count(len(instances), max_images, '"instances" list')
    images: list[bytes | ServiceError] = []
    top_k = None
    for position, instance in enumerate(instances):
        name = f"instance {position}"
        if isinstance(instance, dict):
            if top_k is None and instance.get("top_k") is not None:
                top_k = parse_top_k(instance["top_k"], max_k)
            value = next((instance[k] for k in ("data", "b64", "image") if k in instance), None)
            if isinstance(value, dict):
                value = value.get("b64")
        else:
            value = instance
        try:
            images.append(_decode_base64_image(value, name))
        except ServiceError as error:
            images.append(error)
    return ParsedRequest(images=tuple(images), top_k=top_k or default_top_k, source="kserve", multi=True)


def _numbered_file_fields(data: Mapping[str, Any]) -> list[tuple[int, str]]:
    """The ``file_<n>`` fields of a multipart request, in numeric order."""
    numbered = []
    for name in data:
        match = _NUMBERED_FILE_FIELD.match(str(name))
        if match:
            numbered.append((int(match.group(1)), str(name)))
    return sorted(numbered)


def _check_count(count: int, max_images: int, where: str) -> None:
    if count == 0:
        raise MissingImage(f"No image: the {where} hold no image.")
    if count > max_images:
        raise TooManyImages(f"At most {max_images} images per request; this one has {count}.")


def _decode_image_list(value: Any, max_images: int) -> tuple[bytes | ServiceError, ...]:
    if not isinstance(value, list):
        raise InvalidJson('"images" must be a list of base64 strings.')
    _check_count(len(value), max_images, '"images" list')
    if not all(isinstance(item, str) for item in value):  # a malformed request, not a bad image
        raise InvalidJson('"images" must be a list of base64 strings.')
    decoded: list[bytes | ServiceError] = []
    for position, item in enumerate(value):
        try:
            decoded.append(_decode_base64_image(item, f'element {position} of "images"'))
        except ServiceError as error:  # one bad element fails that image alone
            decoded.append(error)
    return tuple(decoded)


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


def _decode_base64_image(value: Any, name: str = '"image" field') -> bytes:
    if value is None or value == "":
        if name == '"image" field':
            raise MissingImage('No image: the JSON body needs an "image" field with base64 data.')
        raise MissingImage(f"No image: {name} is empty.")
    if not isinstance(value, str):
        raise InvalidJson(f"The {name} must be a base64 string.")
    text = _DATA_URL_PREFIX.sub("", value.strip(), count=1)
    text = re.sub(r"\s+", "", text)
    try:
        decoded = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidImage(f"The {name} is not valid base64.") from exc
    if not decoded:
        raise MissingImage(f"No image: the {name} decodes to 0 bytes.")
    return decoded
