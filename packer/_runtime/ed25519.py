"""Ed25519 signature verification (RFC 8032) with the standard library alone.

The stub of an archive built with ``--verify-on-start --sign-key`` checks its signature
before it imports anything else from the archive, so it cannot use ``cryptography``: the
builder copies :func:`ed25519_valid` into the stub, as it does the interpreter check.
Verification only (no secrets are handled), so timing leaks do not matter; it takes a few
milliseconds. Keep it in the plainest syntax: the stub must parse on any Python.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs milliseconds at start-up; annotations only
if TYPE_CHECKING:
    from typing import Optional, Tuple  # noqa: F401 (used in type comments)

    Point = Tuple[int, int, int, int]

__all__ = ["ed25519_valid"]


def ed25519_valid(public, signature, message):
    # type: (bytes, bytes, bytes) -> bool
    """Whether *signature* (64 bytes) is a valid Ed25519 signature of *message* by *public*."""
    import hashlib

    p = 2**255 - 19
    order = 2**252 + 27742317777372353535851937790883648493
    d = -121665 * pow(121666, p - 2, p) % p

    def add(a, b):
        # type: (Point, Point) -> Point
        # Extended twisted Edwards coordinates; the formula also doubles.
        x1, y1, z1, t1 = a
        x2, y2, z2, t2 = b
        e = (y1 - x1) * (y2 - x2) % p
        f = (y1 + x1) * (y2 + x2) % p
        g = 2 * d * t1 * t2 % p
        h = 2 * z1 * z2 % p
        e, f, g, h = f - e, h - g, h + g, f + e
        return (e * f % p, g * h % p, f * g % p, e * h % p)

    def times(k, point):
        # type: (int, Point) -> Point
        result = (0, 1, 1, 0)
        while k:
            if k & 1:
                result = add(result, point)
            point = add(point, point)
            k >>= 1
        return result

    def decode(data):
        # type: (bytes) -> Optional[Point]
        if len(data) != 32:
            return None
        y = int.from_bytes(data, "little")
        sign = y >> 255
        y &= (1 << 255) - 1
        if y >= p:
            return None
        u = (y * y - 1) % p
        v = (d * y * y + 1) % p
        x = u * pow(v, 3, p) * pow(u * pow(v, 7, p), (p - 5) // 8, p) % p
        if v * x * x % p != u:
            x = x * pow(2, (p - 1) // 4, p) % p
            if v * x * x % p != u:
                return None
        if x == 0 and sign:
            return None
        if x & 1 != sign:
            x = p - x
        return (x, y, 1, x * y % p)

    def same(a, b):
        # type: (Point, Point) -> bool
        return (a[0] * b[2] - b[0] * a[2]) % p == 0 and (a[1] * b[2] - b[1] * a[2]) % p == 0

    if len(signature) != 64:
        return False
    point_a = decode(public)
    point_r = decode(signature[:32])
    s = int.from_bytes(signature[32:], "little")
    if point_a is None or point_r is None or s >= order:
        return False
    base_y = 4 * pow(5, p - 2, p) % p
    base = decode(base_y.to_bytes(32, "little"))
    digest = hashlib.sha512(signature[:32] + public + message).digest()
    h = int.from_bytes(digest, "little") % order
    assert base is not None
    return same(times(s, base), add(point_r, times(h, point_a)))
