//! A daemon short of CPU under the rogue's flood still answers its control
//! API. Its share of the CPU is cut to a tenth (SIGSTOP for 45 ms, SIGCONT
//! for 5 ms, in a loop) while the rogue floods it, so its socket never runs
//! empty; `weavers status` must still answer within seconds. Before the
//! data-plane task yielded after each batch, the runtime polled its I/O
//! driver only when the task's cooperative budget ran out (thousands of
//! datagrams), and `status` went unanswered for over 30 s.

use std::net::{SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use weavers_tests::{lab_or_skip, netns, wait_until, DaemonOpts, WEAVERS_PORT};

use crate::rogue::{self, Target};
use crate::{key_of, serial, SEC};

/// Stops and continues process `pid` in a loop (running `run` of every
/// `period`) until dropped; leaves it running.
struct Throttle {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Throttle {
    fn start(pid: u32, run: Duration, period: Duration) -> Throttle {
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    // SAFETY: signals to a child process of this test, by its PID.
                    unsafe { libc::kill(pid as i32, libc::SIGSTOP) };
                    std::thread::sleep(period - run);
                    unsafe { libc::kill(pid as i32, libc::SIGCONT) };
                    std::thread::sleep(run);
                }
            })
        };
        Throttle { stop, handle: Some(handle) }
    }
}

impl Drop for Throttle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Bytes waiting in the daemon's UDP socket ([`WEAVERS_PORT`]) in
/// namespace `ns` (`/proc/net/udp`, rx_queue).
fn udp_backlog(ns: &str) -> u64 {
    let Ok(out) = netns::exec_in(ns, "cat", &["/proc/net/udp"]) else { return 0 };
    let port = format!(":{:04X}", WEAVERS_PORT);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let queues = f.get(4)?;
            f.get(1)?.ends_with(&port).then(|| u64::from_str_radix(queues.split(':').nth(1)?, 16).ok())?
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn a_daemon_short_of_cpu_under_the_flood_still_answers_its_api() {
    let _one = serial();
    let Some(mut lab) = lab_or_skip(3) else { return };
    lab.start_daemon(1, DaemonOpts::new());
    lab.start_daemon(2, DaemonOpts::new().peer(1));
    lab.wait_mesh(&[1, 2], 30 * SEC);
    let targets = vec![Target {
        name: "h1".into(),
        key: key_of(&lab, 1),
        addr: SocketAddr::V4(SocketAddrV4::new(lab.ip(1), WEAVERS_PORT)),
    }];
    let (ready, stop) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let flood = {
        let (password, ready, stop) = (lab.password().to_owned(), ready.clone(), stop.clone());
        netns::spawn_in(lab.ns(3), move || rogue::attack(&password, &targets, 4, &ready, stop))
    };
    assert!(wait_until(20 * SEC, || ready.load(Ordering::SeqCst) || flood.is_finished()), "the rogue never connected");
    let pid = lab.daemon_pid(1).expect("running");
    let mut waits = Vec::new();
    let mut backlog = 0;
    {
        let _slow = Throttle::start(pid, Duration::from_millis(5), Duration::from_millis(50));
        let until = Instant::now() + 8 * SEC;
        while Instant::now() < until {
            backlog = backlog.max(udp_backlog(lab.ns(1)));
            let t = Instant::now();
            let answer = lab.try_cli_json(1, &["status", "--json"]);
            waits.push((t.elapsed(), answer.is_ok()));
            std::thread::sleep(SEC / 2);
        }
    }
    stop.store(true, Ordering::SeqCst);
    let sent = match flood.join() {
        Ok(r) => r.unwrap_or_else(|e| panic!("the rogue: {e:#}")),
        Err(p) => std::panic::resume_unwind(p),
    };
    let text: Vec<String> =
        waits.iter().map(|(d, ok)| format!("{:.2} s{}", d.as_secs_f64(), if *ok { "" } else { " (failed)" })).collect();
    eprintln!(
        "h1 at a tenth of the CPU under {} datagrams (its socket held up to {backlog} bytes): `status` answered in {}",
        sent.datagrams,
        text.join(", ")
    );
    // Else the daemon kept up and the test proves nothing.
    assert!(backlog >= 64 * 1024, "h1 kept up with the flood (its socket held {backlog} bytes at most)");
    assert!(lab.daemon_running(1), "h1's daemon died:\n{}", lab.log_tail(1, 30));
    let slowest = waits.iter().map(|(d, _)| *d).max().unwrap_or_default();
    assert!(waits.iter().all(|(_, ok)| *ok), "`status` failed under the flood: {text:?}");
    assert!(slowest < 10 * SEC, "`status` took {:.1} s to answer under the flood", slowest.as_secs_f64());
}
