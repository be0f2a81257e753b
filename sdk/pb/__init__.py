"""Generated protobuf code for proto/tickrail/v1 (do not edit; run scripts/gen_proto.py)."""
