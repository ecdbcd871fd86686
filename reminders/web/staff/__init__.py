"""The staff UI (filled in by the staff web app work)."""
from __future__ import annotations

from flask import Flask


def register_staff_ui(app: Flask) -> None:
    return None
