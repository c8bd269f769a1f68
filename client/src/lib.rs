//! secure-ipc client crate: empty for now; the API lands with the data path.
