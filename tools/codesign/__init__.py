"""Co-design: joint search over model, schedule and hardware (placeholder, see api)."""
