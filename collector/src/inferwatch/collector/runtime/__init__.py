"""One running collector: its parts built together, and the background task that closes,
evaluates and alerts on windows."""
