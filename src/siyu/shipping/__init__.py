"""运费模板: freight templates and the freight quote orders call (see ``service``)."""
