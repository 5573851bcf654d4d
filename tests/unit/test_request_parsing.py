"""parse_request: the three request forms, top_k from every source, and their errors."""

import base64
import json

import pytest

from handler.errors import InvalidImage, InvalidJson, InvalidTopK, MissingImage, TooManyImages
from handler.request_parsing import (
    normalise_headers,
    parse_kserve_v1_body,
    parse_request,
    parse_top_k,
    request_id_from,
)

IMG = b"\xff\xd8\xff fake jpeg bytes"
MULTIPART = {"content-type": "multipart/form-data; boundary=x"}
JSON = {"content-type": "application/json"}


def parse(data, headers=None, default=5):
    return parse_request(data, headers or {}, default_top_k=default, max_k=1000)


def test_multipart_file_and_top_k_field():
    parsed = parse({"file": IMG, "top_k": b"3"}, MULTIPART)
    assert (parsed.image_bytes, parsed.top_k, parsed.source) == (IMG, 3, "multipart")


def test_raw_body_with_query_top_k():
    parsed = parse({"body": IMG}, {"content-type": "image/jpeg", "x-top-k": "7"})
    assert (parsed.image_bytes, parsed.top_k, parsed.source) == (IMG, 7, "raw")


def test_json_body_bytes_and_predecoded_dict():
    body = {"image": base64.b64encode(IMG).decode(), "top_k": 2}
    for data in ({"body": json.dumps(body).encode()}, {"body": body}):
        parsed = parse(data, JSON)
        assert (parsed.image_bytes, parsed.top_k, parsed.source) == (IMG, 2, "json")


def test_json_accepts_data_url_and_line_breaks():
    encoded = base64.encodebytes(IMG).decode()
    parsed = parse({"body": json.dumps({"image": "data:image/jpeg;base64," + encoded}).encode()}, JSON)
    assert parsed.image_bytes == IMG


def test_body_field_wins_over_query_and_default_applies():
    assert parse({"file": IMG, "top_k": "2"}, {**MULTIPART, "x-top-k": "9"}).top_k == 2
    assert parse({"file": IMG}, {**MULTIPART, "x-top-k": "9"}).top_k == 9
    assert parse({"body": IMG}, default=4).top_k == 4


@pytest.mark.parametrize("data, headers", [
    ({"notfile": IMG}, MULTIPART), ({"file": b""}, MULTIPART), ({"body": b""}, {}), ({}, {}),
    ({"body": b'{"top_k": 3}'}, JSON), ({"body": b'{"image": ""}'}, JSON), ({"body": b"  "}, JSON),
])
def test_missing_image(data, headers):
    with pytest.raises(MissingImage):
        parse(data, headers)


@pytest.mark.parametrize("body", [b"{bad", b"[1, 2]", b'"str"', b"\xff\xfe", b"42", b'{"image": 5}'])
def test_invalid_json(body):
    with pytest.raises(InvalidJson):
        parse({"body": body}, JSON)


def test_invalid_base64_is_invalid_image():
    with pytest.raises(InvalidImage):
        parse({"body": b'{"image": "not base64!!"}'}, JSON)


@pytest.mark.parametrize("value", [0, -1, 1001, "abc", "2.5", 2.5, True, "", " ", "1e3", None, [3], "99999999"])
def test_invalid_top_k(value):
    with pytest.raises(InvalidTopK):
        parse_top_k(value, 1000)


@pytest.mark.parametrize("value, expected", [(1, 1), ("5", 5), (b"10", 10), (" 7 ", 7), (1000, 1000)])
def test_valid_top_k(value, expected):
    assert parse_top_k(value, 1000) == expected


def test_invalid_query_top_k_is_refused_even_when_the_body_has_one():
    with pytest.raises(InvalidTopK):
        parse({"file": IMG, "top_k": "2"}, {**MULTIPART, "x-top-k": "1001"})


def test_invalid_top_k_in_json_and_query():
    with pytest.raises(InvalidTopK):
        parse({"body": json.dumps({"image": base64.b64encode(IMG).decode(), "top_k": 0}).encode()}, JSON)
    with pytest.raises(InvalidTopK):
        parse({"body": IMG}, {"x-top-k": "abc"})


def test_request_id_sanity():
    assert request_id_from({"x-request-id": "abc-123"}, "fallback") == "abc-123"
    assert request_id_from({"x-request-id": "bad\nid"}, "fallback") == "fallback"
    assert request_id_from({"x-request-id": "x" * 500}, "fallback") == "fallback"
    assert request_id_from({}, "fallback") == "fallback"


def test_normalise_headers_drops_per_field_entries():
    assert normalise_headers({"X-Top-K": "3", "file": {"content-type": "image/png"}}) == {"x-top-k": "3"}


# ---------------------------------------------------------------- several images per request
B64 = base64.b64encode(IMG).decode()


def test_json_images_list_keeps_order_and_bad_elements_inline():
    other = b"\x89PNG-other"
    body = json.dumps({"images": [B64, "!!not base64!!", base64.b64encode(other).decode(), ""], "top_k": 2})
    parsed = parse_request({"body": body.encode()}, JSON, default_top_k=5, max_k=1000)
    assert parsed.multi and parsed.top_k == 2 and parsed.source == "json"
    assert parsed.images[0] == IMG and parsed.images[2] == other
    assert isinstance(parsed.images[1], InvalidImage) and isinstance(parsed.images[3], MissingImage)
    assert "element 1" in parsed.images[1].message


def test_json_images_shape_and_count_errors():
    with pytest.raises(InvalidJson):
        parse({"body": json.dumps({"images": B64}).encode()}, JSON)
    with pytest.raises(InvalidJson):
        parse({"body": json.dumps({"image": B64, "images": [B64]}).encode()}, JSON)
    with pytest.raises(MissingImage):
        parse({"body": json.dumps({"images": []}).encode()}, JSON)
    with pytest.raises(TooManyImages):
        parse_request({"body": json.dumps({"images": [B64] * 5}).encode()}, JSON, 5, 1000, max_images=4)
    assert len(parse_request({"body": json.dumps({"images": [B64] * 4}).encode()}, JSON, 5, 1000,
                             max_images=4).images) == 4


def test_a_one_element_images_list_is_still_the_multi_form():
    parsed = parse({"body": json.dumps({"images": [B64]}).encode()}, JSON)
    assert parsed.multi and parsed.images == (IMG,)


def test_multipart_numbered_fields_in_numeric_order():
    data = {"file_10": b"ten", "file": b"zero", "file_2": b"two", "file_1": b"one", "top_k": b"3"}
    parsed = parse(data, MULTIPART)
    assert parsed.multi and parsed.top_k == 3
    assert parsed.images == (b"zero", b"one", b"two", b"ten")


def test_multipart_numbered_fields_without_file_and_empty_field_inline():
    parsed = parse({"file_1": b"one", "file_2": b""}, MULTIPART)
    assert parsed.images[0] == b"one" and isinstance(parsed.images[1], MissingImage)


def test_multipart_too_many_files():
    data = {"file": IMG, **{f"file_{i}": IMG for i in range(1, 20)}}
    with pytest.raises(TooManyImages):
        parse_request(data, MULTIPART, 5, 1000, max_images=16)


def test_single_forms_are_not_multi():
    assert not parse({"file": IMG}, MULTIPART).multi
    assert not parse({"body": json.dumps({"image": B64}).encode()}, JSON).multi
    assert not parse({"body": IMG}, {}).multi
    # Field names that only look numbered are ignored, as any unknown field is.
    assert not parse({"file": IMG, "file_0": IMG, "file_x": IMG}, MULTIPART).multi


def test_images_elements_must_be_strings_and_null_top_k_is_the_default():
    with pytest.raises(InvalidJson):
        parse({"body": json.dumps({"images": [B64, 7]}).encode()}, JSON)
    assert parse({"body": json.dumps({"images": [B64], "top_k": None}).encode()}, JSON, default=4).top_k == 4
    assert parse({"body": json.dumps({"image": B64, "top_k": None}).encode()}, JSON, default=4).top_k == 4


def test_multipart_field_data_is_an_alias_of_file():
    """TorchServe's documented `curl -F data=@img`; `file` wins when both are sent."""
    single = parse({"data": IMG, "top_k": b"2"}, MULTIPART)
    assert single.images == (IMG,) and single.top_k == 2 and not single.multi
    assert parse({"data": b"other", "file": IMG}, MULTIPART).images == (IMG,)
    several = parse({"data": IMG, "file_1": b"second"}, MULTIPART)
    assert several.multi and several.images == (IMG, b"second")
    with pytest.raises(MissingImage):
        parse({"wrong": IMG}, MULTIPART)
    # A raw body (TorchServe's "body"/"data" key without multipart) is still a raw image.
    assert parse({"data": IMG}, {}).source == "raw"


# ----------------------------------------------------------- KServe v1 (POST /v1/models/NAME:predict)
IMAGE = IMG
B64 = base64.b64encode(IMAGE).decode()


def _v1(instances) -> dict:
    return {"body": json.dumps({"instances": instances}).encode()}


def test_kserve_v1_body_every_instance_form_in_order():
    forms = [{"data": B64}, {"b64": B64}, {"image": B64}, {"data": {"b64": B64}}, B64]
    parsed = parse_kserve_v1_body(_v1(forms), 5, 1000)
    assert parsed.images == (IMAGE,) * len(forms) and parsed.multi and parsed.source == "kserve"
    assert parsed.top_k == 5


def test_kserve_v1_body_as_bytes_str_or_decoded_dict():
    document = {"instances": [{"data": B64, "top_k": "3"}]}
    for data in ({"body": json.dumps(document).encode()}, {"data": json.dumps(document)}, {"body": document}):
        parsed = parse_kserve_v1_body(data, 5, 1000)
        assert parsed.images == (IMAGE,) and parsed.top_k == 3


def test_kserve_v1_first_top_k_wins_and_bad_instances_fail_inline():
    parsed = parse_kserve_v1_body(_v1([{"data": "@@@"}, {"data": B64, "top_k": 2}, {"data": B64, "top_k": 4}]), 5, 1000)
    assert parsed.top_k == 2
    assert isinstance(parsed.images[0], InvalidImage) and parsed.images[1:] == (IMAGE, IMAGE)
    empty = parse_kserve_v1_body(_v1([{"data": ""}, {"other": B64}]), 5, 1000)
    assert all(isinstance(image, MissingImage) for image in empty.images)


@pytest.mark.parametrize("data, error", [
    ({"body": b""}, MissingImage),
    ({}, MissingImage),
    ({"body": b"{not json"}, InvalidJson),
    ({"body": b"[1]"}, InvalidJson),
    ({"body": [1]}, InvalidJson),
    ({"body": b'"a string"'}, InvalidJson),
    ({"body": b'{"inputs": []}'}, MissingImage),
    ({"body": b'{"instances": {"data": "x"}}'}, InvalidJson),
    ({"body": b'{"instances": []}'}, MissingImage),
    ({"body": b'{"instances": [{"data": "x", "top_k": 0}]}'}, InvalidTopK),
    ({"body": b'{"instances": [{"data": "x", "top_k": true}]}'}, InvalidTopK),
])
def test_kserve_v1_request_level_errors(data, error):
    with pytest.raises(error):
        parse_kserve_v1_body(data, 5, 1000)


def test_kserve_v1_too_many_instances():
    with pytest.raises(TooManyImages, match="At most 2"):
        parse_kserve_v1_body(_v1([B64] * 3), 5, 1000, max_images=2)
    assert len(parse_kserve_v1_body(_v1([B64] * 2), 5, 1000, max_images=2).images) == 2
