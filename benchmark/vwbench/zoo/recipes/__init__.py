"""Training recipes for the mini zoo: small trained models of the real architectures, trained on the procedural world."""
