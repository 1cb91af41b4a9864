"""Persistence: files that survive a crash. ``atomic`` (write, fsync, rename), ``cache`` (the
cache folder), ``checkpoint_io`` (the checkpoint file: .npz members and a JSON manifest,
verified). Below every other layer but the package's public face: it imports none of them."""
