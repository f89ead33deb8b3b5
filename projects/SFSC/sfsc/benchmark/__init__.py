from .tables.methods import METHODS, Method, Run, runs_for  # noqa: F401
