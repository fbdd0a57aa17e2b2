"""Fakes at the wire for the test suite (the implementations ship in :mod:`app.testing`)."""
