"""dlt sources (a package per vendor API) and the run path tying them to the warehouse."""
