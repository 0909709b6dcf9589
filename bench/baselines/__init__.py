"""Minimal reference implementations that benchmarks compare Jobsite against."""
