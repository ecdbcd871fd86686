"""The planner: visits whose plan is out of date turned into outbox rows, by the rules of
reminders.timing; a pass, its runs, one visit, the texts it wants and why some will not go."""
