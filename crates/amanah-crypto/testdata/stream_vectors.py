#!/usr/bin/env python3
"""Test vectors of Amanah's document stream format (src/stream.rs), computed independently of
the Rust code with Python's `cryptography` (HKDF-SHA256 and AES-256-GCM). Run it to print the
vectors checked in as `stream::tests::VECTORS`."""

import hashlib
import struct

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

CHUNK = 64 * 1024
DATA_KEY = bytes(range(32))
SALT = bytes(range(0x40, 0x60))
PREFIX = bytes(range(0xA0, 0xA7))
HEADER = bytes([1]) + SALT + PREFIX


def lp(b: bytes) -> bytes:
    return struct.pack(">I", len(b)) + b


def encrypt(scope: str, subject: str, category: str, document: str, plain: bytes) -> bytes:
    info = b"amanah/document/v1" + b"".join(
        lp(x.encode()) for x in (scope, subject, category, document)
    )
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=SALT, info=info).derive(DATA_KEY)
    aead = AESGCM(key)
    chunks = [plain[i : i + CHUNK] for i in range(0, len(plain), CHUNK)] or [b""]
    out = HEADER
    for i, chunk in enumerate(chunks):
        nonce = PREFIX + struct.pack(">I", i) + bytes([1 if i == len(chunks) - 1 else 0])
        out += aead.encrypt(nonce, chunk, HEADER)
    return out


def pattern(n: int) -> bytes:
    return bytes(i % 251 for i in range(n))


CASES = [
    ("", "empty", b""),
    ("", "short", b"Amanah: a passport scan"),
    ("tenant-a", "short", b"Amanah: a passport scan"),
    ("", "one full chunk", pattern(CHUNK)),
    ("", "two chunks", pattern(CHUNK + 100)),
]

for scope, name, plain in CASES:
    ct = encrypt(scope, "subject-1", "passport", "doc-1", plain)
    shown = ct.hex() if len(ct) <= 128 else "sha256:" + hashlib.sha256(ct).hexdigest()
    print(f"{name!r} scope={scope!r} len={len(ct)}\n  {shown}")
