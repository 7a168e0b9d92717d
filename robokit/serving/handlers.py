"""The server's gRPC method table, with request parsing that refuses bad bytes as the client's error.

gRPC's generated table parses each request with `Message.FromString`; bytes that do not parse
make gRPC log a traceback ("Exception deserializing request!") and answer INTERNAL, as if the
server were broken. Here a request that does not parse becomes a `Malformed` value, and the call
answers INVALID_ARGUMENT naming the method and the message type, with one log line:

    add_servicer(servicer, grpc_server)      # instead of add_PolicyServerServicer_to_server
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import grpc

from robokit.serving import robokit_serving_pb2 as pb

logger = logging.getLogger(__name__)

SERVICE = "robokit.serving.v1.PolicyServer"

# method: (request type, response type, request streaming, response streaming)
METHODS = {
    "Health": (pb.HealthRequest, pb.HealthReply, False, False),
    "Setup": (pb.PolicySetup, pb.SetupReply, False, False),
    "SendObservation": (pb.ObservationPart, pb.ObservationAck, True, False),
    "StreamActions": (pb.StreamActionsRequest, pb.ActionChunk, False, True),
    "Reset": (pb.ResetRequest, pb.ResetReply, False, False),
    "Close": (pb.CloseRequest, pb.CloseReply, False, False),
}


@dataclass
class Malformed:
    """A request whose bytes are not a valid message of the expected type."""

    type_name: str
    error: str
    size: int


def _parser(message_type):
    def parse(data: bytes):
        try:
            return message_type.FromString(data)
        except Exception as err:  # DecodeError, and whatever else the protobuf runtime raises on garbage
            return Malformed(message_type.__name__, f"{type(err).__name__}: {err}", len(data))

    return parse


def _refuse(method: str, bad: Malformed, context) -> None:
    logger.info("%s from %s: %d bytes are not a %s (%s)", method, context.peer(), bad.size, bad.type_name, bad.error)
    context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                  f"{method}: the request ({bad.size} bytes) is not a valid {bad.type_name} message ({bad.error})")


def _checked_unary(method: str, behavior):
    def call(request, context):
        if isinstance(request, Malformed):
            _refuse(method, request, context)
        return behavior(request, context)

    return call


def _checked_stream(method: str, behavior):
    def call(request_iterator, context):
        def parts():
            for request in request_iterator:
                if isinstance(request, Malformed):
                    _refuse(method, request, context)
                yield request

        return behavior(parts(), context)

    return call


def method_handlers(servicer) -> dict[str, grpc.RpcMethodHandler]:
    make = {(False, False): grpc.unary_unary_rpc_method_handler, (True, False): grpc.stream_unary_rpc_method_handler,
            (False, True): grpc.unary_stream_rpc_method_handler, (True, True): grpc.stream_stream_rpc_method_handler}
    handlers = {}
    for name, (request_type, response_type, request_streaming, response_streaming) in METHODS.items():
        behavior = getattr(servicer, name)
        checked = (_checked_stream if request_streaming else _checked_unary)(name, behavior)
        handlers[name] = make[(request_streaming, response_streaming)](
            checked, request_deserializer=_parser(request_type), response_serializer=response_type.SerializeToString)
    return handlers


def add_servicer(servicer, server: grpc.Server) -> None:
    """Register `servicer`'s methods on `server` with tolerant request parsing."""
    handlers = method_handlers(servicer)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    if hasattr(server, "add_registered_method_handlers"):
        server.add_registered_method_handlers(SERVICE, handlers)
