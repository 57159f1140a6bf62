# Per-table targets of the paper (table1, table4, ...): see issue 5. Filled in by tables work.
