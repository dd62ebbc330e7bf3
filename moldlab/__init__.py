"""The moldlab command line and the composition root of `moldlab demo`."""
