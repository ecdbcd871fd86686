"""The fault suite: each attack of issue 25 ("reliability under attack"), replayed against the
clinic's deployment as real processes (tests/processes.py: `reminders web`, `celery -A worker
worker`, `celery -A worker beat` on PostgreSQL and Redis, the fake Twilio and SMTP servers).
Each module reports its counts (`service.report`), which the README's Reliability table quotes.
"""
