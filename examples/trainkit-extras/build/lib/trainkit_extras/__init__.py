"""trainkit-extras: an RMSprop optimizer and a confusion-matrix report, as trainkit plugins."""
