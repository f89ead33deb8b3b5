"""The SFSC paper's tables and Fig. 5/6: methods as runs, run records, matrices, reports, curves."""
