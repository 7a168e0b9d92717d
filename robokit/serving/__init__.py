"""Async inference: a policy server and a robot client over gRPC (or in one process).

    from robokit.serving import PolicyServer, ServeConfig, RemoteBackend, LocalBackend, RobotClient, ClientConfig
    server = PolicyServer(ServeConfig(port=8080)).start()
    backend = RemoteBackend("127.0.0.1:8080", "path/to/policy", features)   # or LocalBackend(policy, features)
    stats = RobotClient(io, backend, ClientConfig(fps=30)).run(max_steps=300)

The protocol is `robokit_serving.proto` (generated code committed next to it). Imports are lazy:
`import robokit.serving` loads neither grpc nor torch. See docs/serving.md.
"""

_LAZY = {
    "PolicyServer": "robokit.serving.server",
    "ServeConfig": "robokit.serving.config",
    "RemoteBackend": "robokit.serving.transport",
    "ServerUnavailableError": "robokit.serving.transport",
    "ServerError": "robokit.serving.transport",
    "check_health": "robokit.serving.transport",
    "LocalBackend": "robokit.serving.backends",
    "RobotClient": "robokit.serving.client",
    "ClientConfig": "robokit.serving.client",
    "RobotIO": "robokit.serving.client",
    "ActionQueue": "robokit.serving.action_queue",
    "make_aggregate": "robokit.serving.aggregation",
    "FakeClock": "robokit.serving.clock",
    "SystemClock": "robokit.serving.clock",
    "RunStats": "robokit.serving.stats",
    "ObservationData": "robokit.serving.engine",
    "InferenceEngine": "robokit.serving.engine",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'robokit.serving' has no attribute {name!r}")
