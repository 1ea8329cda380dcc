"""JupiterOne side of syncd: the sync API client (`client`, `errors`), the partition layout and
job plans (`partitions`, `plan`, `verify`), the writer built on them (`writer`) and the
capability probe (`probe`, `capabilities`, `query`). Import from the modules themselves."""
