//! A tokio service that multiplexes a secure_ipc channel with a TCP
//! listener (feature `tokio`): it counts the sensor readings a peer sends
//! over the channel and answers every TCP client with the latest reading
//! and the count so far.
//!
//! `cargo run -p secure-ipc --example tokio_service` runs it against a
//! producer thread of its own, on the userspace backend, and queries it
//! over TCP once; client/tests/tokio.rs runs the same `serve` function.

use secure_ipc::{AsyncReceiver, Backend, Channel, Error, Options};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves until the channel's peer hangs up, then returns the number of
/// readings received. Every accepted TCP client gets one line
/// `count=N last=V\n`.
pub async fn serve(mut rx: AsyncReceiver, listener: TcpListener) -> Result<u64, Error> {
    let mut count = 0u64;
    let mut last = 0u64;
    loop {
        // Both branches are cancel-safe: a reading that arrives while a
        // client is served stays queued for the next turn.
        tokio::select! {
            m = rx.recv() => match m {
                Ok(m) => {
                    last = u64::from_le_bytes(m.payload().try_into().map_err(|_| {
                        Error::Protocol("reading is not 8 bytes".into())
                    })?);
                    count += 1;
                }
                Err(Error::PeerClosed) => return Ok(count),
                Err(e) => return Err(e),
            },
            c = listener.accept() => {
                let (mut s, _) = c.map_err(Error::Io)?;
                let line = format!("count={count} last={last}\n");
                // A slow client must not stall the channel: answer in a task.
                tokio::spawn(async move { let _ = s.write_all(line.as_bytes()).await; });
            }
        }
    }
}

/// Sends `n` readings 0..n over a new attachment to `name`, pausing now
/// and then so that TCP clients get served in between.
pub fn produce(name: &str, opts: &Options, n: u64) -> Result<(), Error> {
    let (mut tx, _rx) = Channel::attach(name, opts)?;
    for i in 0..n {
        tx.send(i.to_le_bytes())?;
        if i % 256 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    Ok(())
}

/// Asks the service at `addr` for its line.
pub async fn query(addr: std::net::SocketAddr) -> std::io::Result<String> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let mut line = String::new();
    s.read_to_string(&mut line).await?;
    Ok(line)
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let name = format!("example-svc-{}", std::process::id());
    let opts = Options::new().backend(Backend::Userspace);
    let (_tx, rx) = Channel::create(&name, &opts)?;
    let rx = AsyncReceiver::new(rx)?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let service = tokio::spawn(serve(rx, listener));
    let producer = std::thread::spawn(move || produce(&name, &opts, 10_000));
    println!("tcp {addr}: {}", query(addr).await?.trim_end());
    producer.join().expect("producer panicked")?;
    let n = service.await??;
    println!("received {n} readings");
    Ok(())
}
