"""`python -m reminders.cli`."""
from reminders.cli import main

main()
