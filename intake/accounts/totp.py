"""Time-based one-time codes (RFC 6238) with pyotp: enrolment, QR code, and single-use verification."""

from __future__ import annotations

import time

import pyotp
import segno
from pyotp.utils import strings_equal

STEP_SECONDS = 30
# Accept the previous and next step too, for clocks that drift; the last accepted step is remembered, so a code
# (or any earlier one) is never accepted twice.
WINDOW = 1


def new_secret() -> str:
    return pyotp.random_base32(length=32)


def provisioning_uri(secret: str, username: str, *, issuer: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=issuer)


def qr_svg(uri: str, *, title: str) -> str:
    """An inline SVG of the QR code for `uri`, rendered on the server (no JavaScript, no external images).

    `title` is its accessible name, in the reader's language.
    """
    qr = segno.make(uri, error="m")
    svg: str = qr.svg_inline(scale=5, dark="#000", light="#fff", title=title, svgclass="qr", lineclass=None)
    return svg.replace("<svg ", '<svg role="img" ', 1)


def _clock() -> float:
    """The time codes are checked against (replaced in tests to step through codes without waiting)."""
    return time.time()


def current_counter(now: float | None = None) -> int:
    return int((_clock() if now is None else now) // STEP_SECONDS)


def matching_counter(secret: str, code: str, *, last_counter: int, now: float | None = None) -> int | None:
    """The time step `code` belongs to if it is valid and newer than `last_counter`, else None."""
    code = "".join(code.split())
    if len(code) != 6 or not code.isdigit():
        # Still compute one code so that malformed input costs about what a wrong code costs.
        pyotp.TOTP(secret).generate_otp(0)
        return None
    totp = pyotp.TOTP(secret)
    base = current_counter(now)
    found = None
    for counter in range(base - WINDOW, base + WINDOW + 1):
        if strings_equal(totp.generate_otp(counter), code) and counter > last_counter and found is None:
            found = counter
    return found
