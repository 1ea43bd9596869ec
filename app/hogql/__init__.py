"""HogQL: a safe, tenant-isolated subset of ClickHouse SQL (issue 7).

Text → sqlglot AST (`parse`) → validated and lowered to our IR (`lower`) → the one printer. No user
text ever reaches ClickHouse: names resolve against `tables`, functions against `functions`, and
every literal becomes a server-side parameter.
"""
