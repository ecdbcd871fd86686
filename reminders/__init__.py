"""Clinic reminders: pre-visit instructions, mood check-ins and crisis-safe two-way texting."""

__version__ = "0.1.0"
