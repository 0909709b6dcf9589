"""Jobsite admin."""
