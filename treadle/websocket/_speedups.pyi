"""Types of the WebSocket codec's optional C fast path (treadle/websocket/_speedups.c)."""

def mask(data: bytes | bytearray | memoryview, key: bytes, /) -> bytes:
    """`data` XOR the 4-byte `key` repeated: see _speedups.c."""
