"""trainkit-extras: an RMSprop optimizer and a most-confused-pairs report, as trainkit plugins."""
