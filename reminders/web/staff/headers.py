"""What every staff page is sent with."""
from __future__ import annotations

# Staff pages carry patient data: no caching, no framing, and nothing loaded from elsewhere
# (clinics run offline, and a template preview must not be able to run script).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
