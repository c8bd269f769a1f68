//! secure-ipc-benches: benchmark helpers (see benches/).
