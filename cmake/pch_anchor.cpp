// Anchor source of the executables precompiled-header target.
