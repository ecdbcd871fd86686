"""The clinic's messaging rules, pure: which messages a visit needs, when and by which
channel; quiet hours, course dates, the texts-per-visit budget, one text a day,
retries and the checks at send time. No database, no clock."""
