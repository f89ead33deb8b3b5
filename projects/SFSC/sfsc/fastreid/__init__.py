"""FastReID plumbing, the package's bottom layer: the compatibility shims (``compat``), a safe
checkpointer (``checkpoint``), a launcher for CPU and GPU machines (``launch``) and the run
set-up (``run_setup``). It imports no other part of ``sfsc``.

Nothing is imported here: ``sfsc/__init__.py`` applies ``compat`` before any FastReID module
is loaded, and the other modules import FastReID.
"""
