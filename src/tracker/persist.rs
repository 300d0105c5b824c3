//! Tracked keys saved to and loaded from the state directory, so that a restart forgets nothing.
