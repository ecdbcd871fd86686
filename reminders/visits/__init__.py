"""A visit's life: the status moves allowed and the one place they are made (moves), and where a
visit stands in its induction series (series)."""
