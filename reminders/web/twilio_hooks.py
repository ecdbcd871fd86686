"""Twilio webhooks: inbound texts and delivery status callbacks (filled in by the two-way work)."""
from __future__ import annotations

from flask import Blueprint

twilio_hooks = Blueprint("twilio_hooks", __name__, url_prefix="/twilio")
