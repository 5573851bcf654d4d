"""Typed request errors: one class per failure, each naming its HTTP status and code.

Handler code raises these; the entry class turns them into statuses in exactly one place, and
each wire format writes the body (handler/responses.py ``error_body`` for this service's JSON).
Messages are written for clients and never carry internals.
"""

from __future__ import annotations


class ServiceError(Exception):
    """Base class: a request failed in a way the client should be told about."""

    status: int = 500
    code: str = "internal_error"
    default_message: str = "The server failed to process the request."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.default_message)
        self.message = message or self.default_message


class MissingImage(ServiceError):
    """400: the request carried no image (no body, no `file` field, no `image` key)."""

    status, code = 400, "missing_image"
    default_message = "No image found in the request."


class InvalidImage(ServiceError):
    """400: the bytes claim to be a supported image but cannot be decoded."""

    status, code = 400, "invalid_image"
    default_message = "The image could not be decoded."


class InvalidTopK(ServiceError):
    """400: top_k is not an integer within the allowed range."""

    status, code = 400, "invalid_top_k"
    default_message = "top_k must be an integer between 1 and the model's class count."


class InvalidJson(ServiceError):
    """400: a JSON body that is malformed or not of the documented shape."""

    status, code = 400, "invalid_json"
    default_message = "The request body is not valid JSON of the documented shape."


class TooManyImages(ServiceError):
    """400: a multi-image request with more images than MAX_IMAGES_PER_REQUEST."""

    status, code = 400, "too_many_images"
    default_message = "Too many images in one request."


class PayloadTooLarge(ServiceError):
    """413: too many bytes, or too many pixels once decoded (decompression bombs)."""

    status, code = 413, "payload_too_large"
    default_message = "The image is larger than the service accepts."


class UnsupportedMediaType(ServiceError):
    """415: the bytes are not an image format the service supports."""

    status, code = 415, "unsupported_media_type"
    default_message = "Unsupported media type: send a JPEG, PNG, WebP, BMP, GIF or TIFF image."


class InternalError(ServiceError):
    """500: anything unexpected; the message is deliberately generic."""

