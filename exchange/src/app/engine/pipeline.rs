//! The three threads started, each fed by a channel: ingress (which
//! sequences what it reads) → durability, and outputs, durable marks,
//! gateways and re-requests → publisher.

use super::checkpoint::Checkpoints;
use super::durability::Durability;
use super::ingress::Ingress;
use super::matcher::Matcher;
use super::publisher::Publisher;
use super::threads::{durability_loop, ingress_loop, publisher_loop, DrGate, IngressIo, PubEvent, Sequencer};
use super::wiring::Shared;
use std::net::UdpSocket;
use std::sync::mpsc;
use std::thread::JoinHandle;

/// Everything the threads take over.
pub(super) struct Stages {
    /// The engine, stamping from the start state.
    pub matcher: Matcher,
    /// The checkpoints writer (`--checkpoints`).
    pub checkpoints: Option<Checkpoints>,
    /// The durability stage ([`super::wiring::durability`]).
    pub durability: Box<dyn Durability>,
    /// The publisher, its streams holding the history.
    pub publisher: Publisher,
    /// The release gate (`--replicate`).
    pub gate: Option<DrGate>,
    /// The publisher's handle on the unicast socket.
    pub publisher_socket: UdpSocket,
    /// The order streams' logic.
    pub ingress: Ingress,
    /// The ingress thread's runtime, sockets and signal handlers.
    pub io: IngressIo,
}

/// The running threads.
pub(super) struct Threads {
    /// Orders groups and the unicast socket, and the matcher (inputs are
    /// stamped and applied in the turn that read them); stops on a signal
    /// or `stop`.
    pub ingress: JoinHandle<()>,
    /// Group commits.
    pub durability: JoinHandle<()>,
    /// Releases outputs once durable; heartbeats and retransmissions.
    pub publisher: JoinHandle<()>,
}

/// Starts the threads `durability`, `publisher` and `ingress`, in that
/// order, so every stage is listening before the ingress delivers
/// anything. `tx_pub` is moved in (the ingress holds the last clone): once
/// the ingress and durability threads end, the publisher's channel closes
/// and it drains and ends too.
pub(super) fn spawn(
    stages: Stages,
    tx_pub: mpsc::Sender<PubEvent>,
    rx_pub: mpsc::Receiver<PubEvent>,
    shared: &Shared,
) -> std::io::Result<Threads> {
    let Stages { matcher, checkpoints, durability, publisher, gate, publisher_socket, ingress, io } = stages;
    let (tx_rec, rx_rec) = mpsc::channel();
    let sequencer = Sequencer { matcher, checkpoints, tx_rec };
    let durability = {
        let (tx_pub, stats, stop, fatal) =
            (tx_pub.clone(), shared.stats.clone(), shared.stop.clone(), shared.fatal.clone());
        let mut journal = durability;
        std::thread::Builder::new()
            .name("durability".into())
            .spawn(move || durability_loop(&mut *journal, rx_rec, tx_pub, &stats, &stop, &fatal))?
    };
    let publisher = {
        let stats = shared.stats.clone();
        std::thread::Builder::new()
            .name("publisher".into())
            .spawn(move || publisher_loop(publisher, rx_pub, publisher_socket, &stats, gate))?
    };
    let ingress = {
        let (stats, stop, fatal) = (shared.stats.clone(), shared.stop.clone(), shared.fatal.clone());
        std::thread::Builder::new()
            .name("ingress".into())
            .spawn(move || ingress_loop(io, ingress, sequencer, &stats, tx_pub, &stop, &fatal))?
    };
    Ok(Threads { ingress, durability, publisher })
}
