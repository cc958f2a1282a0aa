"""kopf handlers: the only layer that knows kopf. Importing gamevm.main registers them."""
