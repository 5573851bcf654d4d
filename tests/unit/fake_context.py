"""A stand-in for TorchServe's Context with the methods the handler calls."""

from __future__ import annotations


class FakeContext:
    def __init__(self, model_dir, headers: list[dict] | None = None) -> None:
        self.system_properties = {"model_dir": str(model_dir), "gpu_id": None, "batch_size": 8}
        self.manifest = {"model": {"modelName": "resnet50", "modelVersion": "1.0"}}
        self.model_name = "resnet50"
        self.headers = headers or []
        self.status: dict[int, tuple[int, str]] = {}
        self.content_type: dict[int, str] = {}
        self.response_headers: dict[int, dict] = {}

    def get_all_request_header(self, idx: int) -> dict:
        return self.headers[idx] if idx < len(self.headers) else {}

    def get_request_id(self, idx: int = 0) -> str:
        return f"ts-{idx}"

    def set_response_status(self, code: int = 200, phrase: str = "", idx: int = 0) -> None:
        self.status[idx] = (code, phrase)

    def set_response_content_type(self, idx: int, value: str) -> None:
        self.content_type[idx] = value

    def set_response_header(self, idx: int, key: str, value: str) -> None:
        self.response_headers.setdefault(idx, {})[key] = value

    def get_request_header(self, idx: int, key: str) -> str | None:
        return self.get_all_request_header(idx).get(key)
