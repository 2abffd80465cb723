"""Cookie-session authentication and items backend for a same-origin single-page app."""

__version__ = "0.1.0"
