"""Questionnaires put to patients (opened, answered, scored by reminders.scales), a course's
progress and the clinic's outcomes."""
