"""Where a study's runs can execute (study/executors.py): the one list that the study config's
`executor.kind` is validated against and that `study run --executor` offers, importable
without the study machinery so the command line starts quickly."""

EXECUTOR_KINDS = ("local", "ray")
