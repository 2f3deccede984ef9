//! What the `--listen` bounds give, measured on the release binary against the fake Nomad:
//! - how long after it is accepted an idle connection (no byte sent) is closed by the server;
//! - the process's descriptors at idle, and while 300 idle, half-sent and garbage connections
//!   are held against a limit of 256 open files, and how long a placement then takes to reach
//!   the table.
//!
//! Run with `cargo bench --bench listener`; results go in BENCHMARKS.md.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use fake_nomad::FakeNomad;

mod common;

use common::util::daemon::Daemon;
use common::util::storm::{
    closed_by_server, connect_sending, lower_open_files_limit, open_descriptors, storm,
};
use common::util::{free_address, web_cluster};
use common::wait_until;

fn rows(table: &std::path::Path) -> String {
    std::fs::read_to_string(table).unwrap_or_default()
}

fn main() {
    let (cluster, node) = web_cluster();
    let fake = FakeNomad::start(cluster);
    let address = free_address();
    let run = Daemon::start_deployed(
        &fake,
        &["--listen", &address.to_string(), "--reload", "none"],
    );
    let (table, pid) = (run.table.clone(), run.pid());
    wait_until("the first table", || rows(&table).lines().count() == 2);
    wait_until("the listener", || TcpStream::connect(address).is_ok());
    std::thread::sleep(Duration::from_millis(200));

    // One idle connection, alone: the time from connect to the server's close.
    let mut closes = Vec::new();
    for _ in 0..3 {
        let mut idle = connect_sending(address, b"");
        let start = Instant::now();
        wait_until("the idle connection to close", || {
            closed_by_server(&mut idle)
        });
        closes.push(start.elapsed());
    }
    let idle_descriptors = open_descriptors(pid);

    lower_open_files_limit(pid);
    let storm_began = Instant::now();
    let mut clients = storm(address);
    let connected = storm_began.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let held = open_descriptors(pid);
    let start = Instant::now();
    let placed = fake.update(|c| c.place("default", "web", "api", &node));
    wait_until("the placement in the table", || {
        rows(&table).contains(&placed)
    });
    let placement = start.elapsed();
    let mut peak = held;
    // At most 32 served at once, each given 5 s for a request head: about ten rounds.
    let deadline = Instant::now() + Duration::from_secs(180);
    while !clients.iter_mut().all(closed_by_server) {
        assert!(
            Instant::now() < deadline,
            "the server did not close every connection"
        );
        peak = peak.max(open_descriptors(pid));
        std::thread::sleep(Duration::from_millis(20));
    }
    let drained = storm_began.elapsed();
    drop(run);

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("| measure | value |");
    println!("|---|---:|");
    for (i, close) in closes.iter().enumerate() {
        println!(
            "| idle connection closed after (run {}) | {:.0} ms |",
            i + 1,
            ms(*close)
        );
    }
    println!("| descriptors at idle | {idle_descriptors} |");
    println!(
        "| 300 connections completed by the kernel in | {:.0} ms |",
        ms(connected)
    );
    println!("| descriptors with 300 connections held (limit 256) | {held} (peak {peak}) |");
    println!(
        "| placement → table, during the storm | {:.0} ms |",
        ms(placement)
    );
    println!(
        "| all 300 closed by the server, from the first connect | {:.1} s |",
        drained.as_secs_f64()
    );
}
