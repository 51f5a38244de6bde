#!/usr/bin/env python3
"""Writes herd's quant cross-check vectors, computed by the reference `gguf` Python package.

Rerun from the repository root:

    pip install gguf numpy       # output records the versions used
    python3 scripts/gen-quant-vectors.py

It rewrites crates/kernels/tests/data/quant_vectors.json, which
crates/kernels/tests/quant_vectors.rs checks herd against. The output depends only on the fixed
seed and the gguf/numpy versions, so a diff after rerunning means the reference moved.

Contents:
- "quantize": for each type gguf can quantize (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0),
  input f32 values (awkward cases and random ones), the block bytes gguf writes for them, and
  the f32 values gguf reads back from those bytes.
- "dequantize": for each type gguf can dequantize (the above and Q2_K, Q3_K, Q4_K, Q5_K, Q6_K;
  gguf cannot quantize the K-quants, and knows neither Q8_1 nor Q8_K), random block bytes with
  sane f16 scales, and the f32 values gguf reads from them.

f32 arrays and block bytes are hex strings of little-endian bytes, so every value (NaN,
infinities, -0.0, subnormals) survives exactly.
"""

import json
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import GGML_QUANT_SIZES, quantize, dequantize

SEED = 20240607
OUT = Path(__file__).resolve().parent.parent / "crates/kernels/tests/data/quant_vectors.json"

QUANTIZABLE = [T.F32, T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0]
DEQUANTIZABLE = QUANTIZABLE + [T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K]

# Byte offsets of the f16 scale fields in each block, overwritten with sane values so that
# random blocks dequantize to finite numbers.
F16_FIELDS = {
    T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
    T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
}


def f32_hex(a):
    return np.ascontiguousarray(a, dtype="<f4").tobytes().hex()


def awkward_blocks(rng, n):
    """Blocks of n values that stress scale choice and rounding."""
    blocks = [
        np.zeros(n),                                   # all zero: scale 0, no division
        np.full(n, 0.75),                              # all equal, positive
        np.full(n, -3.25),                             # all equal, negative
        np.r_[5.0, -5.0, rng.uniform(-1, 1, n - 2)],   # +a before -a: the first wins the sign
        np.r_[-5.0, 5.0, rng.uniform(-1, 1, n - 2)],   # -a before +a
        np.r_[rng.normal(0, 1, n - 1), 1000.0],        # one large outlier
        rng.normal(0, 1e-6, n),                        # tiny: the f16 scale is subnormal
        rng.normal(0, 1e-9, n),                        # tinier: the f16 scale flushes to zero
        rng.normal(0, 1e4, n),                         # large: near the top of f16's range
        np.arange(n) - n / 2 + 0.5,                    # evenly spaced: many exact halves
        np.r_[127.0, np.arange(n - 1) * 0.5 - 3.0],    # amax 127: d = 1, x/d lands on .5s
        rng.uniform(2, 3, n),                          # all positive: min > 0
        rng.uniform(-3, -2, n),                        # all negative: max < 0
    ]
    blocks += [rng.normal(0, s, n) for s in (0.02, 1.0, 30.0)]
    return np.concatenate(blocks).astype(np.float32)


def float_specials():
    """Values that exercise f16/bf16 rounding, overflow, subnormals and NaN."""
    one = np.float32(1.0)
    vals = [0.0, -0.0, 1.0, -1.0, 65504.0, 65519.0, 65520.0, 1e6, -1e6, 6e-8, 3e-8, 1e-10,
            float(one + np.float32(2.0**-11)), float(one + np.float32(3 * 2.0**-11)),
            float(one + np.float32(2.0**-8)), float(one + np.float32(3 * 2.0**-8)),
            float(np.finfo(np.float32).max), float(np.finfo(np.float32).tiny),
            float("inf"), float("-inf"), float("nan")]
    return np.array(vals, dtype=np.float32)


def quantize_cases(rng, qtype):
    block_len, _ = GGML_QUANT_SIZES[qtype]
    if block_len == 1:
        x = np.concatenate([float_specials(), rng.normal(0, 1, 64).astype(np.float32),
                            (rng.normal(0, 1, 32) * 10.0 ** rng.integers(-8, 8, 32)).astype(np.float32)])
    else:
        x = awkward_blocks(rng, block_len)
    q = quantize(x, qtype)
    y = dequantize(q, qtype)
    return {"type": qtype.name, "input": f32_hex(x), "bytes": q.tobytes().hex(), "dequantized": f32_hex(y)}


def random_blocks(rng, qtype, n_blocks):
    block_len, block_bytes = GGML_QUANT_SIZES[qtype]
    if block_len == 1:
        # Any bit pattern is a valid float; F32 gets normal numbers to keep the file readable.
        if qtype == T.F32:
            return rng.normal(0, 1, n_blocks).astype("<f4").view(np.uint8)
        return rng.integers(0, 2**16, n_blocks, dtype=np.uint16).astype("<u2").view(np.uint8)
    raw = rng.integers(0, 256, (n_blocks, block_bytes), dtype=np.uint8)
    for off in F16_FIELDS[qtype]:
        scale = (rng.uniform(1e-4, 0.1, n_blocks) * rng.choice([-1, 1], n_blocks)).astype("<f2")
        scale[0] = 0.0  # one block with a zero scale
        raw[:, off:off + 2] = scale.view(np.uint8).reshape(n_blocks, 2)
    return raw.reshape(-1)


def dequantize_cases(rng, qtype):
    block_len, _ = GGML_QUANT_SIZES[qtype]
    raw = random_blocks(rng, qtype, 256 if block_len == 1 else 4 if block_len == 256 else 16)
    y = dequantize(raw, qtype)
    return {"type": qtype.name, "bytes": raw.tobytes().hex(), "dequantized": f32_hex(y)}


def main():
    rng = np.random.default_rng(SEED)
    with np.errstate(all="ignore"):  # overflow and NaN cases are deliberate
        quant = [quantize_cases(rng, t) for t in QUANTIZABLE]
        deq = [dequantize_cases(rng, t) for t in DEQUANTIZABLE]
    doc = {
        "generator": "scripts/gen-quant-vectors.py",
        "seed": SEED,
        "gguf": version("gguf"),
        "numpy": np.__version__,
        "quantize": quant,
        "dequantize": deq,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
