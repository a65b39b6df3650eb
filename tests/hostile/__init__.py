"""Hostile-input suite of issue #12 (Python side): every bad input is made in the test itself."""
