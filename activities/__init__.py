"""Every side effect Handrail has: one module per area, a class whose `@activity.defn` methods
are its activities (the worker's list is `activities.registry`), and the one side effect
the worker runs on a timer rather than as an activity (`activities.checkpointer`).

Deliberately empty: a workflow or the CLI that needs one area's activities by reference
imports that module alone, not every area and its dependencies.
"""
