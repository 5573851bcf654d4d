"""config/grpc_inference.proto, compiled when the gRPC front starts, into message classes.

Why at run time and not generated ``*_pb2.py`` files: the .proto stays the only copy of the contract
(nothing to regenerate, no staleness test), and generated code is tied to the protobuf runtime
that made it (protobuf refuses gencode newer than itself). grpc_tools' protoc turns the file into a
descriptor set in a few tens of milliseconds; it is loaded into a *private* descriptor pool, so the
package ``inference`` never collides with a client's own copy of the same protocol in one process
(tritonclient.grpc registers ``inference.*`` in the default pool; the unit tests import both).
"""

from __future__ import annotations

import functools
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from scripts import REPO_ROOT

PROTO_FILE = REPO_ROOT / "config" / "grpc_inference.proto"
SERVICE_NAME = "inference.GRPCInferenceService"


class ProtoCompileError(RuntimeError):
    """protoc refused config/grpc_inference.proto (it printed why on stderr)."""


@dataclass(frozen=True)
class Method:
    name: str  # e.g. ModelInfer
    request: Any  # message class
    response: Any


@dataclass(frozen=True)
class Protocol:
    """The service's methods and every message class of the .proto, by short name."""

    service: str
    methods: dict[str, Method]
    messages: dict[str, Any]

    def __getattr__(self, name: str) -> Any:  # protocol.ModelInferRequest(...)
        messages = self.__dict__.get("messages", {})
        if name not in messages:
            raise AttributeError(name)
        return messages[name]


def compile_descriptor_set(proto: Path = PROTO_FILE) -> bytes:
    """The serialised FileDescriptorSet of ``proto`` (grpc_tools' bundled protoc, in process)."""
    from grpc_tools import protoc  # only the front needs it

    with tempfile.TemporaryDirectory(prefix="grpc-proto-") as tmp:
        out = Path(tmp) / "descriptor_set.pb"
        status = protoc.main(["protoc", f"-I{proto.parent}", f"--descriptor_set_out={out}", proto.name])
        if status != 0 or not out.exists():
            raise ProtoCompileError(f"protoc could not compile {proto} (exit {status})")
        return out.read_bytes()


def _messages(pool: descriptor_pool.DescriptorPool, message: Any, prefix: str, into: dict[str, Any]) -> None:
    into[prefix + message.name] = message_factory.GetMessageClass(pool.FindMessageTypeByName(message.full_name))
    for nested in message.nested_types:
        if not nested.GetOptions().map_entry:
            _messages(pool, nested, f"{prefix}{message.name}.", into)


@functools.lru_cache(maxsize=None)
def load_protocol(proto: Path = PROTO_FILE) -> Protocol:
    """Compile once per process; every later call returns the same classes."""
    files = descriptor_pb2.FileDescriptorSet.FromString(compile_descriptor_set(proto))
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:
        pool.Add(file)
    messages: dict[str, Any] = {}
    for file in files.file:
        for message in pool.FindFileByName(file.name).message_types_by_name.values():
            _messages(pool, message, "", messages)
    service = pool.FindServiceByName(SERVICE_NAME)
    methods = {m.name: Method(m.name, message_factory.GetMessageClass(m.input_type),
                              message_factory.GetMessageClass(m.output_type)) for m in service.methods}
    return Protocol(service=SERVICE_NAME, methods=methods, messages=messages)
