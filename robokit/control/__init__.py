"""Control loops at a fixed rate: teleoperate, record, replay; dataset feature helpers."""
