//! What forming a mesh costs: handshakes and datagrams per pair while N
//! hosts bootstrapped from one find each other, on the simulated underlay
//! (instant links, no CPU limit). Wasted handshakes (more than one per
//! pair) or message storms show here long before a lab of hundreds.

use super::*;

/// Counts of what crossed the underlay while `n` hosts formed a mesh.
struct Formation {
    /// Simulated time until every host listed every other as connected.
    took: Duration,
    /// Handshake messages by type (init, response, final).
    handshakes: [usize; 3],
    /// Data datagrams (sessions' traffic: gossip, pings, relays).
    data: usize,
    /// Bytes of everything sent.
    bytes: usize,
}

fn form(n: usize) -> Formation {
    let mut net = Net::new(n);
    for i in 1..n {
        net.bootstrap(i, 0);
    }
    let start = net.now;
    while !net.all_connected() {
        assert!(net.now - start < Duration::from_secs(60), "{n} hosts formed no full mesh in 60 s");
        net.run(Duration::from_millis(250));
    }
    let mut f = Formation { took: net.now - start, handshakes: [0; 3], data: 0, bytes: 0 };
    for (_, _, d) in &net.wire_log {
        f.bytes += d.len();
        match d.get(1) {
            Some(t @ 1..=3) => f.handshakes[*t as usize - 1] += 1,
            Some(4) => f.data += 1,
            _ => {}
        }
    }
    f
}

#[test]
fn forming_a_mesh_costs_one_handshake_per_pair() {
    let n = 24;
    let f = form(n);
    let pairs = n * (n - 1) / 2;
    eprintln!(
        "{n} hosts: full mesh after {:?}; {pairs} pairs: {:?} handshake messages (init, response, final), \
         {} data datagrams ({:.1} per pair), {} bytes",
        f.took,
        f.handshakes,
        f.data,
        f.data as f64 / pairs as f64,
        f.bytes
    );
    // Both ends may dial at once (the lower key wins); a few retries are
    // fine, a handshake per pair per direction per round is not.
    assert!(f.handshakes[0] <= pairs * 3 / 2, "{} initiations for {pairs} pairs", f.handshakes[0]);
}

/// Measures (release build, by hand): the CPU the simulated mesh of
/// `WEAVERS_SIM_N` hosts (default 100) spends forming and idling, per host.
/// `cargo test --release -p weavers-proto --lib idle_cost -- --ignored --nocapture`
#[test]
#[ignore = "a measurement, printed; run by hand in release"]
fn idle_cost() {
    let n: usize = std::env::var("WEAVERS_SIM_N").ok().and_then(|s| s.parse().ok()).unwrap_or(100);
    let t = std::time::Instant::now();
    let mut net = Net::new(n);
    for i in 1..n {
        net.bootstrap(i, 0);
    }
    net.run(Duration::from_secs(1));
    let start = net.now;
    while !net.all_connected() {
        net.run(Duration::from_millis(500));
    }
    let formed = t.elapsed();
    let datagrams = net.wire_log.len();
    net.wire_log.clear();
    let secs: u32 = std::env::var("WEAVERS_SIM_IDLE_S").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
    let t = std::time::Instant::now();
    net.run(Duration::from_secs(secs.into()));
    let idle = t.elapsed();
    let bytes: usize = net.wire_log.iter().map(|(_, _, d)| d.len()).sum();
    eprintln!(
        "{n} hosts: full mesh after {:?} simulated, {:?} of CPU in all ({:?} per host, {datagrams} datagrams); \
         idle: {:?} of CPU per host per simulated second, {} datagrams and {} bytes per host per second",
        net.now - start - Duration::from_secs(secs.into()),
        formed,
        formed / n as u32,
        idle / (secs * n as u32),
        net.wire_log.len() / (secs as usize * n),
        bytes / (secs as usize * n)
    );
}
