from .methods import METHODS, Method, Run, runs_for  # noqa: F401
