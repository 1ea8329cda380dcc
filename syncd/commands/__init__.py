"""One module per `syncd` command that does more than dispatch."""
