"""Auto-tuning: MetaSchedule searches, the reusable ``tuning_logs/`` database, and the no-search fallback."""
