"""The event loop: selection plans, the coffea processor, executors, tables, cutflows."""
