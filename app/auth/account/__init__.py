"""What an account remembers about its own protection: device cookies (devices.py) and the
single-use tokens its mails carry (tokens.py), their SQL in repository.py."""
