# The C module recorderd/wire/_fastbatch.c (see its comment and recorderd.wire.batch).
LITTLE_ENDIAN: int

def decode_valid(
    payloads: list[bytes], kind: int, max_elements: int, /
) -> tuple[bytearray, bytearray, bytearray] | None: ...
