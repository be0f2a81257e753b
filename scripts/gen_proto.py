"""Regenerate the committed protobuf code in sdk/pb from proto/.

Usage: python scripts/gen_proto.py [--check]

protoc emits absolute imports (``from tickrail.v1 import x_pb2``) that would
need ``tickrail`` on sys.path; we rewrite them to ``tickrail.sdk.pb`` so the generated
modules are ordinary members of the SDK package. ``--check`` regenerates into a
temporary folder and exits 1 if the committed files differ.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
OUT_DIR = ROOT / "sdk" / "pb"
_IMPORT = re.compile(r"^from tickrail\.v1 import (\w+)", re.MULTILINE)


def generate(out: Path) -> list[Path]:
    import grpc_tools
    from grpc_tools import protoc  # dev dependency, only needed here

    include = Path(grpc_tools.__file__).parent / "_proto"
    protos = sorted(PROTO_DIR.rglob("*.proto"))
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "protoc",
            f"-I{PROTO_DIR}",
            f"-I{include}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            *(str(p) for p in protos),
        ]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        written = []
        for src in sorted((Path(tmp) / "tickrail" / "v1").iterdir()):
            text = _IMPORT.sub(r"from tickrail.sdk.pb import \1", src.read_text())
            if src.name.endswith("_pb2_grpc.py") and "class " not in text:
                continue  # a proto without services: nothing worth committing
            dest = out / src.name
            dest.write_text(text)
            written.append(dest)
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if sdk/pb is stale")
    args = parser.parse_args()
    if not args.check:
        for path in generate(OUT_DIR):
            print(f"wrote {path.relative_to(ROOT)}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh = {p.name: p.read_text() for p in generate(Path(tmp))}
    committed = {p.name: p.read_text() for p in OUT_DIR.glob("*_pb2*.py*")}
    stale = sorted(n for n in fresh.keys() | committed.keys() if fresh.get(n) != committed.get(n))
    for name in stale:
        print(f"stale: sdk/pb/{name} (run python scripts/gen_proto.py)", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
