"""The SQL surface: catalog migrations and table macros, shipped as package data."""
