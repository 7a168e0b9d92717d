"""The options of `robokit serve` (`ServeConfig`), in a module that imports neither grpc nor torch,
so the command parses its options and takes charge of SIGTERM before anything heavy loads."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ServeConfig:
    """Options of `robokit serve`."""

    host: str = "127.0.0.1"
    """Address to listen on (0.0.0.0 for every interface; then use --token and TLS)."""
    port: int = 8080
    """TCP port (0 picks a free one)."""
    token: str | None = None
    """Shared secret clients must send (metadata `authorization: Bearer <token>`); none = no check."""
    tls_cert: str | None = None
    """PEM certificate chain: serve over TLS (with --tls-key)."""
    tls_key: str | None = None
    """PEM private key of --tls-cert."""
    device: str = "cpu"
    """Device for policies whose client asks for none ("cpu", "cuda", "cuda:1", "mps")."""
    max_message_mb: float = 8.0
    """Largest single gRPC message accepted (MiB); observations stream in smaller parts."""
    max_observation_mb: float = 64.0
    """Largest observation accepted after joining its parts (MiB)."""
    max_sessions: int = 16
    """Clients served at once; more get RESOURCE_EXHAUSTED."""
    max_sessions_per_client: int = 4
    """Sessions one client host (IP address) may hold at once; more get RESOURCE_EXHAUSTED."""
    stream_wait_s: float = 30.0
    """A session whose action stream is not opened this long after Setup is closed."""
    session_idle_s: float = 300.0
    """A session with no action stream and no call for this long is closed."""
