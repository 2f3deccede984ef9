//! Clients of `--listen` that misbehave, for the listener's test and bench alike: a storm of
//! idle, half-sent and garbage connections against a daemon whose descriptor limit is lowered
//! from outside, and the daemon's descriptors as `/proc` shows them.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};

use rustix::process::{Pid, Resource, Rlimit, prlimit};

/// The limit a small container or unit gives: a storm of [`STORM`] connections would exhaust
/// it if each took a descriptor of the process.
pub const LOW_LIMIT: u64 = 256;
/// The storm's connections: idle (nothing sent), half-sent (a request head without its final
/// line) and garbage, 300 in all.
pub const IDLE: usize = 220;
pub const HALF_SENT: usize = 40;
pub const GARBAGE: usize = 40;
pub const STORM: usize = IDLE + HALF_SENT + GARBAGE;

/// The descriptors process `pid` holds now.
pub fn open_descriptors(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the process's descriptors")
        .count()
}

/// Lowers both the soft and the hard open-files limit of the running process `pid` to
/// [`LOW_LIMIT`]: the program raises its soft limit to the hard one at start, so both go down,
/// as in a unit with `LimitNOFILE=256`.
pub fn lower_open_files_limit(pid: i32) {
    prlimit(
        Pid::from_raw(pid),
        Resource::Nofile,
        Rlimit {
            current: Some(LOW_LIMIT),
            maximum: Some(LOW_LIMIT),
        },
    )
    .expect("lower the daemon's descriptor limit");
}

/// A connection to `address` that has sent `sending`, set not to block on reads.
pub fn connect_sending(address: SocketAddr, sending: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(address).expect("the kernel completes the handshake");
    stream.write_all(sending).expect("write");
    stream.set_nonblocking(true).expect("nonblocking");
    stream
}

/// The [`STORM`] connections, held open by the caller.
pub fn storm(address: SocketAddr) -> Vec<TcpStream> {
    let mut clients: Vec<TcpStream> = Vec::with_capacity(STORM);
    clients.extend((0..IDLE).map(|_| connect_sending(address, b"")));
    clients.extend(
        (0..HALF_SENT).map(|_| connect_sending(address, b"GET /metrics HTTP/1.1\r\nHost: x\r\n")),
    );
    clients.extend(
        (0..GARBAGE).map(|_| connect_sending(address, b"\x16\x03\x01\x00\xffgarbage\r\n\r\n")),
    );
    clients
}

/// Whether the server closed this connection (end of file or a reset), without waiting.
pub fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buffer = [0u8; 1024];
    match stream.read(&mut buffer) {
        Ok(0) => true,
        Ok(_) => closed_by_server(stream),
        Err(e) if e.kind() == ErrorKind::WouldBlock => false,
        Err(_) => true,
    }
}
