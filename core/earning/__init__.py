"""Earning rules: the program's rules that turn activity into points (conditions, the engine that applies them, their
API). Not to be confused with each package's ``rules.py``, which holds pure domain rules."""
