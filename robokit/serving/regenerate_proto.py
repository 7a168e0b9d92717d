"""Regenerate the committed Python code of `robokit_serving.proto` (needs grpcio-tools).

    python -m robokit.serving.regenerate_proto

Writes robokit_serving_pb2.py, robokit_serving_pb2.pyi and robokit_serving_pb2_grpc.py next to
the .proto. Run it from any directory after editing the .proto, and commit all four files.
"""

from __future__ import annotations

import sys
from pathlib import Path

PROTO = Path(__file__).with_name("robokit_serving.proto")


def main() -> int:
    try:
        from grpc_tools import protoc
    except ImportError:
        print("regenerate_proto needs grpcio-tools: pip install grpcio-tools", file=sys.stderr)
        return 1
    root = PROTO.parents[2]  # the repository root, so imports read `from robokit.serving import ...`
    rel = PROTO.relative_to(root)
    args = ["grpc_tools.protoc", f"-I{root}", f"--python_out={root}", f"--pyi_out={root}",
            f"--grpc_python_out={root}", str(rel)]
    code = protoc.main(args)
    if code != 0:
        print(f"protoc failed with exit code {code}", file=sys.stderr)
        return code
    print(f"regenerated Python code for {rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
