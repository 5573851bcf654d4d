"""TorchServe's own Context for handler tests, built as its worker builds it.

No stand-in: a handler call that TorchServe's Context does not have, or calls with other
arguments, fails here as it would in a worker.
"""

from __future__ import annotations

from pathlib import Path

import ts
from ts.context import Context, RequestProcessor

MANIFEST = {"model": {"modelName": "resnet50", "modelVersion": "1.0"}}


def worker_context(model_dir: Path | str, headers: list[dict] | None = None, metrics=None) -> Context:
    """The Context of a worker for ``model_dir`` (ts/model_service_worker.py builds it once, for
    initialize). With ``headers``, also as ts/service.py fills it for one batch before handle():
    a RequestProcessor per request, carrying that request's headers, and TorchServe's request ids
    (``ts-<index>`` here)."""
    context = Context("resnet50", str(model_dir), MANIFEST, 8, None, ts.__version__, metrics=metrics)
    if headers is not None:
        context.request_processor = [RequestProcessor(dict(h)) for h in headers]
        context.request_ids = {index: f"ts-{index}" for index in range(len(headers))}
    return context


def failed_statuses(context: Context) -> dict[int, tuple[int, str | None]]:
    """{request index: (status, phrase)} of the batch's requests answered with other than 200."""
    statuses = {index: context.get_response_status(index) for index in range(len(context.request_processor))}
    return {index: status for index, status in statuses.items() if status[0] != 200}
