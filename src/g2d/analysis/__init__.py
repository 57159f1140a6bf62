"""Analysis: the results contract (summary CSV), tables and figures used by the notebooks."""
