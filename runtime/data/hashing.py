"""Stable 64-bit hashing of key values: xxh64 over a canonical byte encoding, vectorized.

Why not Python's `hash()`: it is salted per process for strings and differs across versions,
so two ranks (or yesterday's writer and today's reader) would disagree on a row's partition.
The hash here is xxh64 (the `xxhash` library's algorithm) with the fixed seed `HASH_SEED`
over these bytes, so it is the same on every machine, process and Python version:

- one value: `payload || tag`, where the tag byte names the value's logical kind, so the int 1,
  the float 1.0 and the string "1" hash differently, while int8..int64 of the same value agree:
  | kind | tag | payload |
  |---|---|---|
  | integers (any width, signed or not) | `i` | 8 bytes little-endian int64 |
  | floats | `f` | 8 bytes little-endian float64 (-0.0 as 0.0, one NaN) |
  | booleans | `b` | 8 bytes, 0 or 1 |
  | date32/date64 | `d` | 8 bytes, days since 1970-01-01 |
  | timestamps (any unit, any zone) | `t` | 8 bytes, microseconds since the epoch (UTC) |
  | strings | `s` | UTF-8 bytes |
  | binary | `y` | the bytes |
  | anything else (decimal, time, ...) | `x` | UTF-8 of pyarrow's cast to string |
- several values (a composite key): xxh64 of the concatenated 8-byte little-endian digests of
  the values above. Each component is fixed width, which is the length prefix that keeps
  ("ab", "c") apart from ("a", "bc").

The fixed-width kinds are hashed in numpy by `xxh64_lanes`, a transcription of xxh64 for inputs
made of whole 8-byte lanes plus tail bytes; tests check it against `xxhash.xxh64_intdigest`
bit for bit. Strings are hashed by the library once per distinct value (dictionary encoding),
then spread to rows with a take.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

HASH_SEED = 0x6770756670656574  # "gpufleet" in ASCII

_M = (1 << 64) - 1
P1 = 11400714785074694791
P2 = 14029467366897019727
P3 = 1609587929392839161
P4 = 9650029242287828579
P5 = 2870177450012600261
_U = np.uint64

TAG_INT, TAG_FLOAT, TAG_BOOL, TAG_DATE, TAG_TIME, TAG_STR, TAG_BIN, TAG_OTHER = (
    ord(c) for c in "ifbdtsyx"
)


def _rotl(x, r):
    """Rotate left; consumes `x` (an array it may overwrite) to save allocations on 10M rows."""
    if isinstance(x, np.ndarray) and x.ndim:
        t = x >> _U(64 - r)
        x <<= _U(r)
        x |= t
        return x
    return (x << _U(r)) | (x >> _U(64 - r))


def _round(acc, lane):
    acc = acc + lane * _U(P2)
    acc = _rotl(acc, 31)
    acc *= _U(P1)
    return acc


def xxh64_lanes(lanes, tail=(), seed=HASH_SEED):
    """xxh64 of, per element, the bytes `lane_0 .. lane_k-1 (8 bytes LE each) || tail bytes`.

    `lanes` are uint64 arrays (or scalars) of one length, `tail` up to 7 small ints (the same for
    every element). Equal to `xxhash.xxh64_intdigest(those bytes, seed)`; numpy integer arrays
    wrap on overflow, which is the modular arithmetic xxh64 is defined with.
    """
    lanes = [np.asarray(x, dtype=_U) for x in lanes]
    n = np.broadcast_shapes(*(x.shape for x in lanes)) if lanes else ()
    length = 8 * len(lanes) + len(tail)
    with np.errstate(over="ignore"):
        i = 0
        if length >= 32:
            v = [np.full(n, (seed + P1 + P2) & _M, _U), np.full(n, (seed + P2) & _M, _U),
                 np.full(n, seed & _M, _U), np.full(n, (seed - P1) & _M, _U)]
            while i + 4 <= len(lanes):
                v = [_round(v[j], lanes[i + j]) for j in range(4)]
                i += 4
            h = _rotl(v[0].copy(), 1) + _rotl(v[1].copy(), 7) + _rotl(v[2].copy(), 12) + _rotl(v[3].copy(), 18)
            for j in range(4):
                h = (h ^ _round(_U(0), v[j])) * _U(P1) + _U(P4)
        else:
            h = np.full(n, (seed + P5) & _M, _U)
        h = h + _U(length)
        for lane in lanes[i:]:
            h ^= _round(_U(0), lane)
            h = _rotl(h, 27)
            h *= _U(P1)
            h += _U(P4)
        rest = list(tail)
        if len(rest) >= 4:
            word = rest[0] | rest[1] << 8 | rest[2] << 16 | rest[3] << 24
            h = _rotl(h ^ (_U(word) * _U(P1)), 23) * _U(P2) + _U(P3)
            rest = rest[4:]
        for byte in rest:
            h ^= _U((byte * P5) & _M)
            h = _rotl(h, 11)
            h *= _U(P1)
        h ^= h >> _U(33)
        h *= _U(P2)
        h ^= h >> _U(29)
        h *= _U(P3)
        h ^= h >> _U(32)
    return np.asarray(h, dtype=_U)


def _fill(arr, value):
    return pc.fill_null(arr, value) if arr.null_count else arr


def _lib_hash(values, tag, seed):
    """Hash Python str/bytes values with the xxhash library; None hashes to 0 (masked later)."""
    t = bytes([tag])
    out = np.empty(len(values), dtype=_U)
    for k, v in enumerate(values):
        if v is None:
            out[k] = 0
        else:
            b = v.encode("utf-8") if isinstance(v, str) else bytes(v)
            out[k] = xxhash.xxh64_intdigest(b + t, seed)
    return out


def column_hash(arr, seed=HASH_SEED):
    """(uint64 digests, bool valid mask) for one column, per the encoding in the module docstring."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    valid = arr.is_valid().to_numpy(zero_copy_only=False) if arr.null_count else np.ones(len(arr), bool)
    t = arr.type
    if pa.types.is_dictionary(t):
        dh, dvalid = column_hash(arr.dictionary, seed)
        idx = _fill(arr.indices, 0).to_numpy(zero_copy_only=False).astype(np.int64)
        return (dh[idx] if len(dh) else np.zeros(len(arr), _U)), valid
    if pa.types.is_integer(t):
        x = _fill(arr, 0).cast(pa.int64(), safe=False).to_numpy(zero_copy_only=False)
        return xxh64_lanes([x.view(_U)], [TAG_INT], seed), valid
    if pa.types.is_floating(t):
        x = _fill(arr, 0).cast(pa.float64()).to_numpy(zero_copy_only=False).copy()
        x[x == 0] = 0.0  # -0.0 == 0.0, so both become +0.0
        x[np.isnan(x)] = np.nan
        return xxh64_lanes([x.view(_U)], [TAG_FLOAT], seed), valid
    if pa.types.is_boolean(t):
        x = _fill(arr, False).to_numpy(zero_copy_only=False).astype(_U)
        return xxh64_lanes([x], [TAG_BOOL], seed), valid
    if pa.types.is_date(t):
        x = _fill(arr.cast(pa.date32()), 0).cast(pa.int32()).to_numpy(zero_copy_only=False).astype(np.int64)
        return xxh64_lanes([x.view(_U)], [TAG_DATE], seed), valid
    if pa.types.is_timestamp(t):
        us = arr.cast(pa.timestamp("us", tz=t.tz), safe=False)
        x = _fill(us.cast(pa.int64()), 0).to_numpy(zero_copy_only=False)
        return xxh64_lanes([x.view(_U)], [TAG_TIME], seed), valid
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        tag = TAG_STR
    elif pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        tag = TAG_BIN
    else:
        arr, tag = arr.cast(pa.string()), TAG_OTHER
    enc = pc.dictionary_encode(arr)
    dh = _lib_hash(enc.dictionary.to_pylist(), tag, seed)
    idx = _fill(enc.indices, 0).to_numpy(zero_copy_only=False).astype(np.int64)
    return (dh[idx] if len(dh) else np.zeros(len(arr), _U)), valid


def key_hash(columns, seed=HASH_SEED):
    """(uint64 digests, valid mask) of the key formed by `columns`; a row is valid only when
    no key column is null. One column: its digest; several: xxh64 of the digests."""
    digests, valid = [], None
    for col in columns:
        h, v = column_hash(col, seed)
        digests.append(h)
        valid = v if valid is None else (valid & v)
    if len(digests) == 1:
        return digests[0], valid
    return xxh64_lanes(digests, (), seed), valid


def value_hash(values, types, seed=HASH_SEED):
    """Digest of one key given as Python values and their pyarrow types (for lookups)."""
    cols = [pa.array([v], type=t) for v, t in zip(values, types)]
    return int(key_hash(cols, seed)[0][0])


def hash_u64(values, *keys, seed=HASH_SEED):
    """xxh64 of the lanes (values, *keys): a cheap stable pseudo-random function of integers."""
    return xxh64_lanes([values, *keys], (), seed)
