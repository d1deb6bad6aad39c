"""Reliability suite: kills, faults, bad input, parallel jobs and webhook attacks (issue 7)."""
