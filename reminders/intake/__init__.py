"""Appointments in: one upsert shared by the CSV import, the JSON API and the staff UI."""
