"""One module per command group; each calls appliance functions and prints the outcome."""
