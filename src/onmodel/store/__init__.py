"""Records: SQLModel tables, the engine with its migrations, and the queries the studio needs."""
