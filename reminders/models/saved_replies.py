"""Saved replies: answers staff give again and again, written by admins per language.

A reply's body is a small template (the same sandbox and variables as the message templates:
reminders.rendering), rendered for the patient it is offered to, so "stop eating after 3:30 AM"
is that patient's own clock time. Deleting one keeps the row (deleted_at) for the audit log's sake.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from reminders.models.base import Base, UTCDateTime, utcnow

SAVED_REPLY_LANGUAGES = {"en": "English", "es": "Spanish"}


class SavedReply(Base):
    __tablename__ = "saved_replies"

    id: Mapped[int] = mapped_column(primary_key=True)
    language: Mapped[str] = mapped_column(String(8), index=True)
    title: Mapped[str] = mapped_column(String(80))  # what staff pick it by: "Ride home"
    body: Mapped[str] = mapped_column(Text)
    position: Mapped[int] = mapped_column(Integer, default=0)  # the order it is offered in
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(254), default="")
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
