"""Documentation that is generated from the code, so that it cannot drift from it."""
