//! `sipc`: secure_ipc channels from the shell.
//!
//! Run `sipc --help` for the commands, examples and exit codes. The
//! argument parser and the stdin/stdout framing live in the library
//! (`secure_ipc::cli`, where the fuzz targets reach them); this binary
//! turns a parsed command into channel operations.

mod bench;
mod demo;
mod status;
mod stream;
mod waydroid;

use secure_ipc::cli::args::{self, Command, Usage};
use secure_ipc::cli::frame::FrameError;
use secure_ipc::cli::help::HELP;
use secure_ipc::Error;
use std::io;
use std::process::ExitCode;

/// An error for the shell: message and exit code.
pub struct Fail(pub String, pub u8);

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        let code = match e {
            Error::NoSuchChannel | Error::ChannelExists | Error::Busy => 3,
            Error::NotPermitted
            | Error::IdentityRejected
            | Error::PskMismatch
            | Error::OwnerRejected => 4,
            Error::ModuleNotLoaded => 5,
            Error::AuthenticationFailed => 6,
            Error::Protocol(_) => 7,
            Error::InvalidName
            | Error::InvalidGeometry
            | Error::InvalidArgument(_)
            | Error::MessageTooLarge { .. } => 2,
            _ => 1,
        };
        Fail(e.to_string(), code)
    }
}

impl From<io::Error> for Fail {
    fn from(e: io::Error) -> Self {
        Fail(e.to_string(), 1)
    }
}

impl From<Usage> for Fail {
    fn from(u: Usage) -> Self {
        usage(u.0)
    }
}

impl From<FrameError> for Fail {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::Io(e) => Fail(format!("reading stdin: {e}"), 1),
            e => Fail(e.to_string(), 2),
        }
    }
}

/// A usage error (exit 2).
pub fn usage(msg: impl Into<String>) -> Fail {
    Fail(format!("{} (see sipc --help)", msg.into()), 2)
}

fn real_main() -> Result<(), Fail> {
    let argv: Vec<_> = std::env::args_os().skip(1).collect();
    if argv.is_empty() {
        print!("{HELP}");
        return Err(Fail("no command given".into(), 2));
    }
    match args::parse(&argv)? {
        Command::Help => {
            print!("{HELP}");
            Ok(())
        }
        Command::Version => {
            println!("sipc {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Listen(l) => stream::listen(&l),
        Command::Connect(c) => stream::connect(&c),
        Command::Stats(s) => status::stats(&s),
        Command::Info => status::info(),
        Command::Bench(b) => bench::run(&b),
        Command::Demo(d) => demo::run(&d),
        Command::DemoContainer(d) => demo::container(&d),
        Command::Waydroid(w) => waydroid::run(&w),
    }
}

fn main() -> ExitCode {
    // Like any shell tool, die quietly of SIGPIPE when stdout's reader goes
    // (`sipc listen x | head -1`). Rust ignores it by default, which turns
    // that into an error message; every socket write here passes
    // MSG_NOSIGNAL, so only stdout/stderr can raise it.
    // SAFETY: setting a signal's disposition to its default is always sound.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    match real_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail(msg, code)) => {
            eprintln!("sipc: {msg}");
            ExitCode::from(code)
        }
    }
}
