"""Which messages an appointment needs and when (pure), and the passes that act on it."""
