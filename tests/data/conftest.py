from tests.test_end_to_end import tiny_tasks  # noqa: F401  (the session fixture of tiny checkpoints + tasks)
