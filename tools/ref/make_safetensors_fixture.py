#!/usr/bin/env python3
"""Writes tests/data/reference.safetensors with the reference `safetensors` package
(PyPI: pip install safetensors numpy), so the C++ reader is checked against the format as
the Python ecosystem writes it, not against our own writer.

The values are simple closed forms the C++ test recomputes:
  f32  [2, 3]     : i * 0.5 - 1
  f64  [4]        : 1 / (i + 1)
  f16  [3]        : [1.5, -2.25, 65504]   (exact in binary16)
  bf16 [2, 2]     : bit patterns of [1, -2, 0.5, 3]  (numpy has no bfloat16: raw u16 bits
                    are written under dtype BF16 by patching the header, see below)
  i64  [5]        : i * 1000000007
  i32  [2, 2]     : [-1, 0, 7, 2**31 - 1]
  u8   [4]        : [0, 1, 128, 255]
  bool [3]        : [True, False, True]
  scalar f32 []   : 42
Run: python3 tools/ref/make_safetensors_fixture.py
"""
import json
import struct
import numpy as np
from safetensors.numpy import save_file

tensors = {
    "f32": (np.arange(6, dtype=np.float32) * 0.5 - 1).reshape(2, 3),
    "f64": 1.0 / (np.arange(4, dtype=np.float64) + 1),
    "f16": np.array([1.5, -2.25, 65504], dtype=np.float16),
    "bf16_bits": np.array([0x3F80, 0xC000, 0x3F00, 0x4040], dtype=np.uint16).reshape(2, 2),
    "i64": np.arange(5, dtype=np.int64) * 1000000007,
    "i32": np.array([-1, 0, 7, 2**31 - 1], dtype=np.int32).reshape(2, 2),
    "u8": np.array([0, 1, 128, 255], dtype=np.uint8),
    "bool": np.array([True, False, True]),
    "scalar": np.array(42, dtype=np.float32),
}
path = "tests/data/reference.safetensors"
save_file(tensors, path, metadata={"producer": "safetensors-python", "format": "np"})

# numpy cannot express bfloat16; the format stores it as raw 16-bit words. Re-label the
# uint16 entry as BF16 in the header; the data section is kept byte for byte.
raw = open(path, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
entry = header.pop("bf16_bits")
assert entry["dtype"] == "U16"
entry["dtype"] = "BF16"
header["bf16"] = entry
text = json.dumps(header, separators=(",", ":"))
text += " " * ((8 - len(text) % 8) % 8)
open(path, "wb").write(struct.pack("<Q", len(text)) + text.encode() + raw[8 + n:])
print("wrote", path)
