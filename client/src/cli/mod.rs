//! The `sipc` command line's parsers, in the library so that the fuzz
//! targets (fuzz/) can reach them: the argument parser ([`args`], its text
//! [`help`]) and the stdin/stdout message framing ([`frame`]). Used by the
//! `sipc` binary (src/bin/sipc/); not part of the client API.

pub mod args;
pub mod frame;
pub mod help;
