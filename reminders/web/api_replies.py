"""API routes for check-ins and escalations (filled in by the two-way work)."""
from __future__ import annotations
