"""SOQL: the text of the window query (pure), built only from validated configuration."""

from syncd.soql.query import BASE_FIELDS, literal_datetime, literal_string, select_fields, window_query

__all__ = ["BASE_FIELDS", "literal_datetime", "literal_string", "select_fields", "window_query"]
