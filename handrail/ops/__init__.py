"""Running Handrail: configuration, logging, the Temporal connection, schedules and the
embedded stack's supervisor."""
