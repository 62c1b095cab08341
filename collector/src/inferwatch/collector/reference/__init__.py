"""Reference profiles: fitted once from an upload or from early traffic, used by every window."""
