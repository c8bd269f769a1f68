//! loom models of the ring protocol live in tests/; run with RUSTFLAGS="--cfg loom".
