"""Experiments: train one run, compare methods over seeds, report tables and plots."""
