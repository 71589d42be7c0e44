# Evaluation without any database server.
database = { mode = "sqlite" }
