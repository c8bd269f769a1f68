//! secure-ipc-ring: placeholder, being written.
