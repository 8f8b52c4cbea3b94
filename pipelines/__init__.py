"""dlt sources (a package per vendor API) and the pipeline factory tying them to the warehouse."""
