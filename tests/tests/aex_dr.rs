//! Disaster recovery of `aex engine` on the overlay (issue 7), with the real
//! processes. h1 is the production engine (`--replicate` to h3); h2 runs
//! `aex gateway` (acks file), `aex customers` (100 TCP sessions) and
//! `aex record` (all market data); h3 is the DR site: a hot standby
//! (`--standby-listen`) or the pilot light (`aex journal --on-failover`).
//! Production is lost at a random moment under load (engine SIGKILL, its
//! weaversd kill -9, its underlay link down) or partitioned away; trading
//! resumes at h3 (the gateway follows the report stream, resends what was
//! not answered, the new primary deduplicates), every order the customers
//! sent is answered, and `aex audit` on the DR journal with the gateway's
//! acks, the record and the checkpoints shows no acknowledged order lost
//! (`rpo_orders` 0), no duplicate execution, one failover, the market data
//! as replayed, and the recovery time. AEX_DR_RUNS (default 1) runs per
//! mode, AEX_DR_RATE (default 300) orders a second over all sessions.
//! Build first: `cargo build --workspace && CI=true cargo test -p weavers-tests --test aex_dr`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use aex::symbols::SymbolTable;
use serde_json::Value;
use weavers_tests::procs::{read_json, register_aex, AexSecrets, Proc};
use weavers_tests::{bins, lab_or_skip, netns, wait_until, Lab};

const REPL_PORT: u16 = 7800;
const GW_PORT: u16 = 9400;
/// The customers' sessions: brokers 1-2 with 50 customers each.
const BROKERS: &str = "1-2";
const CUSTOMERS_PER_BROKER: u64 = 50;
const SESSIONS: u64 = 2 * CUSTOMERS_PER_BROKER;
/// How long the customers send: production fails 1.5-4.5 s after the first
/// acknowledgement, and what it left unanswered must be resent (after 1 s,
/// 3 s, 7 s) and answered before the customers stop.
const LOAD_SECS: u64 = 12;

fn nanos() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Hot standby; production killed.
    Hot,
    /// Pilot light; production killed.
    Pilot,
    /// Hot standby; production partitioned away, then healed (and fenced).
    Partition,
}

/// A run's lab and files; every `aex` process gets the same two-symbol file.
struct Site {
    lab: Lab,
    dir: PathBuf,
    symbols: String,
    secrets: AexSecrets,
}

impl Site {
    fn new() -> Option<Site> {
        let mut lab = lab_or_skip(3)?;
        lab.start_exposed_mesh(&[]);
        let dir = lab.dir().to_path_buf();
        // Two symbols: few groups to resolve and join, many crossing orders.
        let lines: String = SymbolTable::shipped()
            .iter()
            .take(2)
            .map(|s| format!("{} {} {} {} {}\n", s.index, s.ticker.as_str(), s.orders_group, s.md_group, s.ref_price))
            .collect();
        let path = dir.join("symbols.txt");
        std::fs::write(&path, lines).unwrap();
        register_aex(&lab, 1, Some(&path)).expect("aex register");
        let secrets = AexSecrets::make(&dir.join("secrets"), "1", BROKERS).expect("aex keys and logins");
        Some(Site { lab, dir, symbols: path.to_str().unwrap().to_string(), secrets })
    }

    /// `--symbols FILE` and `args`.
    fn args(&self, args: &[&str]) -> Vec<String> {
        ["--symbols", &self.symbols].iter().chain(args).map(|s| s.to_string()).collect()
    }

    /// `aex ARGS` on host `h`, its output in `<lab dir>/<name>.log`.
    fn start(&self, h: usize, name: &str, args: &[&str]) -> Proc {
        Proc::aex(&self.lab, h, name, &self.args(args)).unwrap_or_else(|e| panic!("starting aex {name}: {e}"))
    }

    fn engine_args(&self, h: usize, journal: &str, status: &str, cp: &str) -> Vec<String> {
        let ip = Lab::overlay(h).to_string();
        self.args(&[
            "engine",
            "--name",
            "eng1",
            "--dns",
            &ip,
            "--bind",
            &ip,
            "--journal",
            journal,
            "--status",
            status,
            "--checkpoints",
            cp,
            "--checkpoint-every",
            "250",
            "--keys",
            &self.secrets.engine_keys(),
        ])
    }
}

/// The acks file's first acknowledgements counted by epoch (the gateway
/// flushes it every 100 ms).
fn acks_by_epoch(path: &str) -> BTreeMap<u64, u64> {
    let mut by = BTreeMap::new();
    for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
        if let Some(e) = line.split_whitespace().nth(4).and_then(|e| e.parse().ok()) {
            *by.entry(e).or_default() += 1;
        }
    }
    by
}

fn u(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("no {k}: {v}"))
}

/// What a run measured.
struct Figures {
    rto_ms: u64,
    acks: BTreeMap<u64, u64>,
    p99_us: u64,
    resends: u64,
}

/// One run of a mode.
fn one_run(mode: Mode, run: u64, rate: u64) -> Option<Figures> {
    let t_run = Instant::now();
    let mut site = Site::new()?;
    let dir = site.dir.clone();
    let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
    let dr_addr = format!("{}:{REPL_PORT}", Lab::overlay(3));
    let (dr_journal, dr_status, dr_cp) = (p("dr.journal"), p("dr.status.json"), p("dr.checkpoints"));
    let (p_journal, p_status, p_cp) = (p("p.journal"), p("p.status.json"), p("p.checkpoints"));

    // The DR site first.
    let mut dr = match mode {
        Mode::Hot | Mode::Partition => {
            let mut a = site.engine_args(3, &dr_journal, &dr_status, &dr_cp);
            a.extend(["--standby-listen".into(), dr_addr.clone()]);
            Proc::aex(&site.lab, 3, "dr", &a).unwrap()
        }
        Mode::Pilot => {
            let mut engine = site.engine_args(3, &dr_journal, &dr_status, &dr_cp);
            engine.extend(["--fence-listen".into(), dr_addr.clone(), "--epoch".into(), "{next_epoch}".into()]);
            let cmd = format!("exec {} {}", bins::aex().display(), engine.join(" "));
            site.start(
                3,
                "dr",
                &[
                    "journal",
                    "--listen",
                    &dr_addr,
                    "--journal",
                    &dr_journal,
                    "--status",
                    &dr_status,
                    "--keys",
                    &site.secrets.dr_keys(),
                    "--on-failover",
                    &cmd,
                ],
            )
        }
    };
    assert!(
        wait_until(Duration::from_secs(40), || read_json(Path::new(&dr_status)).is_some()),
        "the DR site never wrote its status: {}",
        dr.log_tail(30)
    );
    let mut p_args = site.engine_args(1, &p_journal, &p_status, &p_cp);
    p_args.extend(["--replicate".into(), dr_addr.clone()]);
    let mut primary = Proc::aex(&site.lab, 1, "primary", &p_args).unwrap();
    assert!(
        wait_until(Duration::from_secs(40), || read_json(Path::new(&p_status))
            .is_some_and(|s| s["dr_connected"] == true)),
        "the primary never connected to DR: {}\n{}",
        primary.log_tail(30),
        dr.log_tail(30)
    );

    // Gateway 1, the recorder and the customers on h2.
    let h2 = Lab::overlay(2).to_string();
    let gw_listen = format!("{h2}:{GW_PORT}");
    let (acks, gw_status) = (p("gw1.acks"), p("gw1.status.json"));
    let mut gateway = site.start(
        2,
        "gateway",
        &[
            "gateway",
            "--id",
            "1",
            "--listen",
            &gw_listen,
            "--logins",
            &site.secrets.logins(),
            "--keys",
            &site.secrets.gw_keys(1),
            "--acks",
            &acks,
            "--status",
            &gw_status,
            "--dns",
            &h2,
            "--bind",
            &h2,
        ],
    );
    let (record, rec_status) = (p("md.record"), p("record.status.json"));
    let mut recorder = site.start(
        2,
        "record",
        &[
            "record",
            "--out",
            &record,
            "--status",
            &rec_status,
            "--dns",
            &h2,
            "--bind",
            &h2,
            "--keys",
            &site.secrets.md_keys(),
        ],
    );
    for (name, st, proc) in [("gateway", &gw_status, &gateway), ("record", &rec_status, &recorder)] {
        assert!(
            wait_until(Duration::from_secs(40), || read_json(Path::new(st)).is_some()),
            "aex {name} never wrote its status: {}",
            proc.log_tail(30)
        );
    }
    // The engine's joins reach h2 by gossip; orders sent before are resent anyway.
    let table = SymbolTable::parse(&std::fs::read_to_string(&site.symbols).unwrap()).unwrap();
    wait_until(Duration::from_secs(15), || {
        let g = site.lab.try_cli_json(2, &["groups", "--json"]).map(|v| v.to_string()).unwrap_or_default();
        table.iter().all(|s| g.contains(&s.orders_group.to_string())) && g.contains("h1")
    });
    let summary = p("customers.summary.json");
    let per_session = format!("{}", rate as f64 / SESSIONS as f64);
    let mut customers = site.start(
        2,
        "customers",
        &[
            "customers",
            "--gateway",
            &gw_listen,
            "--brokers",
            BROKERS,
            "--customers",
            &CUSTOMERS_PER_BROKER.to_string(),
            "--rate",
            &per_session,
            "--duration",
            &LOAD_SECS.to_string(),
            "--passwords",
            &site.secrets.passwords(),
            "--summary-json",
            &summary,
            "--status",
            &p("customers.status.json"),
            "--dns",
            &h2,
        ],
    );
    assert!(
        wait_until(Duration::from_secs(40), || acks_by_epoch(&acks).values().sum::<u64>() > 0),
        "nothing acknowledged: customers {}\ngateway {}\nprimary {}",
        customers.log_tail(20),
        gateway.log_tail(20),
        primary.log_tail(20)
    );

    // Replication lag while both run: sequenced, not yet durable at DR
    // (one snapshot of the primary's status).
    let kill_at = Duration::from_millis(1500 + nanos() % 3000);
    let t0 = Instant::now();
    let mut lags = Vec::new();
    while t0.elapsed() < kill_at {
        std::thread::sleep(Duration::from_millis(250));
        if let Some(s) = read_json(Path::new(&p_status)) {
            lags.push(s["last_seq"].as_i64().unwrap_or(0) - s["dr_durable_seq"].as_i64().unwrap_or(0));
        }
    }
    let before = acks_by_epoch(&acks);
    assert!(before.keys().all(|&e| e == 1), "acks before the failure: {before:?}");
    let failed_at = nanos();
    match mode {
        Mode::Hot | Mode::Pilot => {
            primary.kill9();
            site.lab.kill9(1);
            netns::ip(&["-n", site.lab.underlay_ns(), "link", "set", "v1", "down"]).unwrap();
        }
        Mode::Partition => {
            site.lab.block(1, 2);
            site.lab.block(1, 3);
        }
    }
    // What the old primary had released when cut off (its status is
    // rewritten every second).
    let cut_off = (mode == Mode::Partition).then(|| {
        std::thread::sleep(Duration::from_millis(2500));
        read_json(Path::new(&p_status)).unwrap()
    });
    // Trading resumes at h3: acks of epoch 2 flow.
    let resumed =
        wait_until(Duration::from_secs(30), || acks_by_epoch(&acks).range(2..).map(|(_, n)| n).sum::<u64>() > 10);
    assert!(
        resumed,
        "trading never resumed at h3: acks by epoch {:?}\nDR: {}\ngateway: {}",
        acks_by_epoch(&acks),
        dr.log_tail(30),
        gateway.log_tail(20)
    );

    // Every order the customers sent is answered: what production left
    // unanswered the gateway resent, and the new primary deduplicated.
    let code = customers.wait_timeout(Duration::from_secs(LOAD_SECS + 60));
    assert!(code.is_some_and(|c| c.success()), "aex customers: {code:?}\n{}", customers.log_tail(30));
    let s = read_json(Path::new(&summary)).expect("the customers' summary");
    assert_eq!(u(&s, "logged_in"), SESSIONS, "{s}");
    assert!(u(&s, "orders_sent") > 0, "{s}");
    assert_eq!(u(&s, "orders_acked") + u(&s, "rejects"), u(&s, "orders_sent"), "every order answered: {s}");

    // The old primary's last release: its final `dr_durable_seq`.
    let mut old_released = None;
    if mode == Mode::Partition {
        // Heal: the old primary comes back, is fenced and exits 3.
        site.lab.unblock(1, 2);
        site.lab.unblock(1, 3);
        let code = primary.wait_timeout(Duration::from_secs(90));
        assert_eq!(code.and_then(|c| c.code()), Some(3), "the old primary: {}", primary.log_tail(30));
        assert!(primary.log().contains("fenced"), "{}", primary.log_tail(30));
        let st = read_json(Path::new(&p_status)).unwrap();
        assert_eq!(st["fenced_by"], 2, "{st}");
        let cut = cut_off.unwrap();
        let (cut_durable, end_durable) = (u(&cut, "dr_durable_seq"), u(&st, "dr_durable_seq"));
        if end_durable == cut_durable {
            for k in ["reports", "md_messages"] {
                assert_eq!(st[k], cut[k], "the old primary published {k} after the partition: {cut} then {st}");
            }
        } else {
            // A durable mark DR sent before it promoted, held up by the
            // partition (TCP retransmits it after the heal): the old
            // primary releases those records' outputs before it learns of
            // the fence. Allowed only for records DR holds as they are
            // (checked by `fenced_tail`).
            eprintln!(
                "run {run} {mode:?}: the old primary released seqs {}..={end_durable} after the cut (a late durable \
                 mark from DR): reports {} -> {}, md_messages {} -> {}",
                cut_durable + 1,
                cut["reports"],
                st["reports"],
                cut["md_messages"],
                st["md_messages"]
            );
        }
        old_released = Some(end_durable);
    }

    // SIGTERM: the gateway flushes its acks file and exits 0.
    let code = gateway.stop_with(libc::SIGTERM, Duration::from_secs(20));
    assert!(code.is_some_and(|c| c.success()), "aex gateway: {code:?}\n{}", gateway.log_tail(30));
    let gw = read_json(Path::new(&gw_status)).unwrap();
    let acks_seen = acks_by_epoch(&acks);
    eprintln!(
        "run {run} {mode:?}: customers {s}\nrun {run} {mode:?}: gateway {gw}\nrun {run} {mode:?}: acks by epoch {acks_seen:?}"
    );
    assert_eq!(acks_seen.values().sum::<u64>(), u(&gw, "acks"), "one line per first acknowledgement: {gw}");
    assert_eq!(u(&gw, "acks"), u(&s, "orders_acked"), "the gateway's acks are the customers': {gw}\n{s}");
    assert_eq!(u(&gw, "report_messages_lost"), 0, "no report given up: {gw}");
    if mode == Mode::Partition {
        fenced_tail(&p_journal, &dr_journal, &acks, old_released.unwrap());
    }
    let code = recorder.stop_with(libc::SIGTERM, Duration::from_secs(20));
    assert!(code.is_some_and(|c| c.success()), "aex record: {code:?}\n{}", recorder.log_tail(30));
    let rs = read_json(Path::new(&rec_status)).unwrap();
    eprintln!("run {run} {mode:?}: record {rs}");
    assert_eq!(rs["gaps_unrecovered"], 0, "{rs}");
    assert!(rs["epoch"].as_u64().is_some_and(|e| e >= 2), "market data of the new primary recorded: {rs}");
    let code = dr.stop_with(libc::SIGTERM, Duration::from_secs(20));
    assert!(code.is_some_and(|c| c.success()), "the DR engine: {code:?} {}", dr.log_tail(30));

    let mut audit = Command::new(bins::aex());
    audit.args(site.args(&[
        "audit",
        "--json",
        "--journal",
        &dr_journal,
        "--acks",
        &acks,
        "--record",
        &record,
        "--failed-at",
        &failed_at.to_string(),
    ]));
    for cp in [&p_cp, &dr_cp] {
        if Path::new(cp).exists() {
            audit.args(["--checkpoints", cp]);
        }
    }
    let out = audit.output().unwrap();
    let rep: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("audit output: {e}: {}", String::from_utf8_lossy(&out.stderr)));
    eprintln!("run {run} {mode:?}: audit {rep}; replication lag samples {lags:?}");
    assert_eq!(rep["rpo_orders"], 0, "{rep}");
    assert_eq!(rep["duplicate_executions"], 0, "{rep}");
    assert_eq!(rep["failovers"], 1, "{rep}");
    assert_eq!(rep["checkpoint_mismatches"], 0, "{rep}");
    assert_eq!(rep["acks_checked"], u(&gw, "acks"), "{rep}");
    assert!(u(&rep, "md_messages_checked") > 0, "the record checked: {rep}");
    assert_eq!(rep["md_gaps"], 0, "{rep}");
    assert_eq!(rep["ok"], true, "{rep}");
    let rto_ms = rep["rto_ms"].as_u64().unwrap_or_else(|| panic!("no rto_ms: {rep}"));
    eprintln!("run {run} {mode:?}: {:.1} s", t_run.elapsed().as_secs_f64());
    Some(Figures {
        rto_ms,
        acks: acks_seen,
        p99_us: s["ack_latency_us"]["p99"].as_u64().unwrap_or(0),
        resends: u(&gw, "resends"),
    })
}

/// The old primary's journal agrees with DR's up to a point; what it holds
/// past it was never released: its last release (`released`, its final
/// `dr_durable_seq`) is within the common part, and no acknowledgement
/// names one of the records past it.
fn fenced_tail(old: &str, dr: &str, acks: &str, released: u64) {
    let (old, dr) = (aex::journal::read(Path::new(old)).unwrap(), aex::journal::read(Path::new(dr)).unwrap());
    let common = old.records.iter().zip(&dr.records).take_while(|(a, b)| a == b).count();
    let tail = &old.records[common..];
    eprintln!(
        "old primary: {} records, {common} in common with DR's {}, {} never released",
        old.records.len(),
        dr.records.len(),
        tail.len()
    );
    assert!(
        released <= common as u64,
        "the old primary released up to seq {released}, DR holds {common} of its records"
    );
    for line in std::fs::read_to_string(acks).unwrap().lines() {
        let f: Vec<u64> = line.split_whitespace().map(|x| x.parse().unwrap()).collect();
        let (seq, epoch) = (f[3], f[4] as u32);
        assert!(
            !tail.iter().any(|r| r.seq == seq && r.epoch == epoch),
            "acknowledged from the old primary's un-replicated tail: {line}"
        );
    }
}

fn runs(mode: Mode) {
    let (n, rate) = (env_or("AEX_DR_RUNS", 1), env_or("AEX_DR_RATE", 300));
    let mut rtos = Vec::new();
    for run in 0..n {
        let Some(f) = one_run(mode, run, rate) else { return };
        eprintln!(
            "run {run} {mode:?}: rto {} ms, acks by epoch {:?}, {} resends, p99 order-to-ack {} µs",
            f.rto_ms, f.acks, f.resends, f.p99_us
        );
        rtos.push(f.rto_ms);
    }
    rtos.sort_unstable();
    eprintln!("{mode:?}: {n} runs at {rate} orders/s, rto_ms sorted {rtos:?}");
}

#[test]
fn hot_standby_takes_over_without_losing_an_acknowledged_order() {
    runs(Mode::Hot);
}

#[test]
fn pilot_light_takes_over_without_losing_an_acknowledged_order() {
    runs(Mode::Pilot);
}

#[test]
fn a_partitioned_primary_is_fenced_and_never_trades_again() {
    runs(Mode::Partition);
}
