//! The weavers demo: a lab of four hosts in network namespaces, each with
//! `weaversd`, joined through one seed host. It shows the encrypted mesh
//! (`weavers status`), a ping across the overlay, and multicast that reaches
//! only the hosts that listen, over an underlay that drops multicast as a
//! cloud does. Everything it makes is removed when it ends (Ctrl-C too).
//!
//! Run by `./demo.sh` (which builds first). `--hold` keeps the lab up until
//! Ctrl-C so you can look around with `weavers --socket ... status`.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use weavers_tests::{lab_or_skip, DaemonOpts};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn step(title: &str) {
    println!("\n\x1b[1m== {title}\x1b[0m");
}

fn stopped() -> bool {
    STOP.load(Ordering::SeqCst)
}

fn main() {
    let hold = std::env::args().any(|a| a == "--hold");
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    let Some(mut lab) = lab_or_skip(4) else {
        eprintln!("demo: the lab needs root (network namespaces)");
        std::process::exit(1);
    };
    step("4 hosts on an underlay that drops multicast; h2..h4 know only h1");
    lab.start_daemon(1, DaemonOpts::new().arg("--query-interval").arg("10"));
    for i in 2..=4 {
        lab.start_daemon(i, DaemonOpts::new().peer(1).arg("--query-interval").arg("10"));
    }
    lab.wait_mesh(&[1, 2, 3, 4], Duration::from_secs(20));
    for i in 1..=4 {
        lab.expose(i, &format!("10.40.0.{i}/16"));
    }
    print!("{}", lab.cli_ok(1, &["status"]));
    if stopped() {
        return;
    }

    step("ping from h2 to h3's overlay address 10.40.0.3 (encrypted, via the mesh)");
    let out = lab.host(2).exec("ping", &["-c", "3", "-i", "0.2", "10.40.0.3"]);
    print!("{}", String::from_utf8_lossy(&out.stdout));
    if stopped() {
        return;
    }

    step("multicast: h2 and h3 join 239.1.1.1, h4 does not; h1 sends 1000 datagrams");
    let group = Ipv4Addr::new(239, 1, 1, 1);
    let receivers: Vec<_> = (2..=4)
        .map(|i| {
            let g = if i == 4 { Ipv4Addr::new(239, 1, 1, 2) } else { group };
            lab.udp_recv(i, Some(g), 5000, Some(Ipv4Addr::new(10, 40, 0, i as u8)))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2)); // the joins travel by gossip
    let payloads: Vec<Vec<u8>> = (0..1000u32).map(|n| n.to_be_bytes().to_vec()).collect();
    lab.udp_send(1, SocketAddrV4::new(group, 5000), Some(Ipv4Addr::new(10, 40, 0, 1)), &payloads);
    std::thread::sleep(Duration::from_secs(1));
    println!("weavers groups on h1 (link-local groups go to every host; the rest only where wanted):");
    print!("{}", lab.cli_ok(1, &["groups"]));
    for (i, r) in (2..=4).zip(receivers) {
        let n = r.finish().len();
        let note = if i == 4 { " (joined 239.1.1.2 only: nothing sent its way)" } else { "" };
        println!("h{i} received {n} of 1000{note}");
    }

    if hold {
        step("holding the lab; Ctrl-C to remove it");
        for i in 1..=4 {
            println!("  h{i}: weavers --socket {} status", lab.socket(i).display());
        }
        while !stopped() {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    step("removing the lab");
}
