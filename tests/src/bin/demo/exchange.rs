//! The exchange's processes on the lab's hosts, their status files, and the
//! end of a run: stop the load, audit, summarise.

use crate::{Args, DrMode};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};
use weavers_tests::procs::{read_json, register_aex, AexSecrets, Forward, Proc};
use weavers_tests::{bins, netns, wait_until, Lab};

/// Where the gateways listen for customers.
const GATEWAY_PORT: u16 = 7800;

/// Host numbers of the roles.
pub const EXCHANGE: usize = 1;
/// The market-data host.
pub const MD: usize = 4;
/// The gateway hosts (gateway id = position + 1).
pub const GATEWAYS: [usize; 2] = [2, 3];
/// The DR host (with --dr).
pub const DR: usize = 5;
/// Where the DR site takes the primary's records.
const REPL_PORT: u16 = 7900;

fn overlay(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 40, 0, i as u8)
}

fn s<T: ToString>(v: T) -> String {
    v.to_string()
}

/// Registers the symbols' names on h1 and waits until every host resolves them.
pub fn register(lab: &Lab) -> Result<()> {
    register_aex(lab, EXCHANGE, None)?;
    let names = |i| {
        lab.try_cli_json(i, &["dns", "ls", "--json"])
            .ok()
            .and_then(|v| v.as_array().map(|a| a.iter().filter(|r| r["name"].to_string().contains(".aex.")).count()))
            .unwrap_or(0)
    };
    for i in 1..=lab.len() {
        if !wait_until(Duration::from_secs(20), || names(i) >= 200) {
            bail!("h{i} knows {} of the 200 AEX names after 20 s", names(i));
        }
    }
    Ok(())
}

/// The running exchange.
pub struct Exchange {
    dir: PathBuf,
    engine: Proc,
    dr: Option<Proc>,
    /// When production was failed (ns since the Unix epoch).
    failed_at: Option<u64>,
    record: Proc,
    view: Option<Proc>,
    gateways: Vec<Proc>,
    customers: Vec<Proc>,
    forward: Option<Forward>,
    /// CPU of every process but the load generators', from the load's start.
    cpu: crate::cpu::Watch,
}

impl Exchange {
    /// Makes the run's secrets (`aex keys`, `aex logins` into the run
    /// directory, every file 0600; processes get their paths), then starts
    /// every process, the engine and the consumers first.
    pub fn start(lab: &Lab, args: &Args) -> Result<Exchange> {
        let dir = lab.dir().to_path_buf();
        let p = |name: &str| dir.join(name).display().to_string();
        let dns = |i: usize| vec![s("--dns"), overlay(i).to_string()];
        let gateway_ids = format!("1-{}", GATEWAYS.len());
        let secrets = AexSecrets::make(&dir.join("secrets"), &gateway_ids, &format!("1-{}", args.brokers))
            .context("making the run's keys and logins")?;

        let engine_on = |h: usize, journal: &str, status: &str, cp: &str| {
            let mut a = vec![s("engine"), s("--name"), s("eng1"), s("--journal"), p(journal)];
            a.extend([s("--status"), p(status), s("--checkpoints"), p(cp)]);
            a.extend([s("--md-batch-us"), s(args.md_batch_us), s("--keys"), secrets.engine_keys()]);
            a.extend(dns(h));
            a
        };
        let repl = SocketAddrV4::new(overlay(DR), REPL_PORT).to_string();
        let dr = match args.dr {
            None => None,
            Some(mode) => {
                let mut standby = engine_on(DR, "dr.journal", "dr.json", "dr.checkpoints");
                let a = match mode {
                    DrMode::Hot => {
                        standby.extend([s("--standby-listen"), repl.clone()]);
                        standby
                    }
                    DrMode::Pilot => {
                        standby.extend([s("--fence-listen"), repl.clone(), s("--epoch"), s("{next_epoch}")]);
                        let cmd = format!("exec {} {}", bins::aex().display(), standby.join(" "));
                        vec![s("journal"), s("--listen"), repl.clone(), s("--journal"), p("dr.journal")]
                            .into_iter()
                            .chain([s("--status"), p("dr.json"), s("--keys"), secrets.dr_keys()])
                            .chain([s("--on-failover"), cmd])
                            .collect()
                    }
                };
                let proc_ = Proc::aex(lab, DR, "dr", &a)?;
                if !wait_until(Duration::from_secs(60), || read_json(&dir.join("dr.json")).is_some()) {
                    bail!("the DR site is not up after 60 s:\n{}", proc_.log_tail(20));
                }
                Some(proc_)
            }
        };
        let mut engine_args = engine_on(EXCHANGE, "eng1.journal", "engine.json", "eng1.checkpoints");
        if args.dr.is_some() {
            engine_args.extend([s("--replicate"), repl]);
        }
        let engine = Proc::aex(lab, EXCHANGE, "engine", &engine_args)?;

        let mut rec_args = vec![s("record"), s("--out"), p("md.record"), s("--status"), p("record.json")];
        rec_args.extend([s("--keys"), secrets.md_keys()]);
        rec_args.extend(dns(MD));
        let record = Proc::aex(lab, MD, "record", &rec_args)?;

        let view_addr = SocketAddrV4::new(overlay(MD), 8080);
        let mut view_args = vec![s("view"), s("--listen"), view_addr.to_string()];
        view_args.extend([s("--keys"), secrets.md_keys()]);
        view_args.extend(dns(MD));
        let view = Proc::aex(lab, MD, "view", &view_args)?;

        let mut gateways = Vec::new();
        for (n, &h) in GATEWAYS.iter().enumerate() {
            let id = n + 1;
            let mut a = vec![s("gateway"), s("--id"), s(id), s("--listen")];
            a.push(SocketAddrV4::new(overlay(h), GATEWAY_PORT).to_string());
            a.extend([s("--logins"), secrets.logins(), s("--keys"), secrets.gw_keys(id)]);
            a.extend([s("--acks"), p(&format!("gw{id}.acks"))]);
            a.extend([s("--status"), p(&format!("gw{id}.json")), s("--state"), p(&format!("gw{id}.state.json"))]);
            a.extend(dns(h));
            gateways.push(Proc::aex(lab, h, &format!("gateway{id}"), &a)?);
        }
        let mut x = Exchange {
            dir: dir.clone(),
            engine,
            dr,
            failed_at: None,
            record,
            view: Some(view),
            gateways,
            customers: Vec::new(),
            forward: None,
            cpu: Default::default(),
        };
        // Everything resolves its groups first; wait for the gateways to listen.
        for (n, &h) in GATEWAYS.iter().enumerate() {
            let status = x.dir.join(format!("gw{}.json", n + 1));
            if !wait_until(Duration::from_secs(60), || read_json(&status).is_some()) {
                bail!("gateway {} on h{h} is not up after 60 s:\n{}", n + 1, x.gateways[n].log_tail(20));
            }
        }
        let engine_status = x.dir.join("engine.json");
        let ready = |v: &Value| x.dr.is_none() || v["dr_connected"] == true;
        if !wait_until(Duration::from_secs(60), || read_json(&engine_status).is_some_and(|v| ready(&v))) {
            bail!("the engine is not up (or not replicating) after 60 s:\n{}", x.engine.log_tail(20));
        }

        let mut watched: Vec<(String, Option<u32>)> = vec![
            ("engine".into(), x.engine.pid()),
            ("record".into(), x.record.pid()),
            ("view".into(), x.view.as_ref().and_then(Proc::pid)),
        ];
        watched.extend(x.gateways.iter().map(|g| ("gateways".to_string(), g.pid())));
        watched.extend(x.dr.iter().map(|d| ("dr".to_string(), d.pid())));
        watched.extend((1..=lab.len()).map(|i| ("weaversd".to_string(), lab.daemon_pid(i))));
        x.cpu = crate::cpu::Watch::start(&watched);
        let half = args.brokers / 2;
        let ranges = [(1, half), (half + 1, args.brokers)];
        let duration = args.duration.unwrap_or(7 * 24 * 3600);
        for (n, &h) in GATEWAYS.iter().enumerate() {
            let (a, b) = ranges[n];
            let mut c = vec![s("customers"), s("--gateway")];
            c.push(SocketAddrV4::new(overlay(h), GATEWAY_PORT).to_string());
            c.extend([s("--brokers"), format!("{a}-{b}"), s("--customers"), s(args.customers)]);
            c.extend([s("--rate"), s(args.rate), s("--duration"), s(duration), s("--passwords"), secrets.passwords()]);
            c.extend([s("--summary-json"), p(&format!("customers{}.json", n + 1))]);
            c.extend([s("--status"), p(&format!("customers{}.status.json", n + 1))]);
            c.extend([s("--histogram"), p(&format!("customers{}.hgrm", n + 1))]);
            c.extend(dns(h));
            x.customers.push(Proc::aex(lab, h, &format!("customers{}", n + 1), &c)?);
        }
        if args.view_port != 0 {
            let listen = SocketAddr::from(([127, 0, 0, 1], args.view_port));
            match Forward::start(listen, lab.ns(MD), view_addr.into()) {
                Ok(f) => x.forward = Some(f),
                Err(e) => eprintln!("demo: cannot listen on {listen} for the view ({e}); the view stays in the lab"),
            }
        }
        Ok(x)
    }

    /// Where the view is served on this machine.
    pub fn view_addr(&self) -> Option<SocketAddr> {
        self.forward.as_ref().map(Forward::addr)
    }

    /// Whether a DR site runs.
    pub fn has_dr(&self) -> bool {
        self.dr.is_some()
    }

    /// Whether production has been failed.
    pub fn primary_killed(&self) -> bool {
        self.failed_at.is_some()
    }

    /// Fails the production site: its engine and weaversd killed (SIGKILL),
    /// its underlay link down.
    pub fn kill_primary(&mut self, lab: &mut Lab) -> Result<()> {
        self.failed_at = Some(now_ns());
        self.cpu.keep(self.engine.pid());
        self.cpu.keep(lab.daemon_pid(EXCHANGE));
        self.engine.kill9();
        lab.kill9(EXCHANGE);
        netns::ip(&["-n", lab.underlay_ns(), "link", "set", &format!("v{EXCHANGE}"), "down"])
            .context("taking production's underlay link down")?;
        Ok(())
    }

    /// Whether a load generator still runs.
    pub fn load_running(&mut self) -> bool {
        self.customers.iter_mut().any(Proc::running)
    }

    /// A status file's JSON (`engine`, `record`, `gw1`, `customers1.status`, ...).
    pub fn status(&self, name: &str) -> Option<Value> {
        read_json(&self.dir.join(format!("{name}.json")))
    }

    /// The customers' status files.
    pub fn customer_statuses(&self) -> Vec<Value> {
        (1..=self.customers.len()).filter_map(|n| self.status(&format!("customers{n}.status"))).collect()
    }

    /// Stops the load and the exchange (the view keeps running), audits,
    /// and returns the summary.
    pub fn finish(&mut self, lab: &Lab) -> Result<Value> {
        let overlay_drops = overlay_drops(lab);
        let mut cpu_used = self.cpu.used(&[]);
        for c in &mut self.customers {
            c.stop(Duration::from_secs(10));
        }
        // Let the last acknowledgements and market data settle, and the
        // recorder fill its gaps, before stopping anything else.
        std::thread::sleep(Duration::from_secs(3));
        self.record.stop(Duration::from_secs(10));
        for g in &mut self.gateways {
            g.stop(Duration::from_secs(10));
        }
        self.engine.stop(Duration::from_secs(10));
        if let Some(dr) = &mut self.dr {
            dr.stop(Duration::from_secs(10));
        }

        // With a DR site, its journal is the truth (it holds every record
        // production ever acknowledged, and what came after a failover).
        let journal = if self.dr.is_some() { "dr.journal" } else { "eng1.journal" };
        let mut audit = Command::new(bins::aex());
        audit.arg("audit").arg("--journal").arg(self.dir.join(journal));
        audit.arg("--record").arg(self.dir.join("md.record"));
        for cp in ["eng1.checkpoints", "dr.checkpoints"] {
            if self.dir.join(cp).exists() {
                audit.arg("--checkpoints").arg(self.dir.join(cp));
            }
        }
        if let Some(t) = self.failed_at {
            audit.arg("--failed-at").arg(t.to_string());
        }
        for n in 1..=self.gateways.len() {
            audit.arg("--acks").arg(self.dir.join(format!("gw{n}.acks")));
        }
        audit.arg("--json");
        let t = Instant::now();
        let out = audit.output().context("running aex audit")?;
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(
            |_| json!({ "ok": false, "errors": [String::from_utf8_lossy(&out.stderr).trim().to_string()] }),
        );
        let audit_s = t.elapsed().as_secs_f64();

        let customers: Vec<Value> =
            (1..=self.customers.len()).filter_map(|n| self.status(&format!("customers{n}"))).collect();
        let sum = |k: &str| customers.iter().map(|c| c[k].as_u64().unwrap_or(0)).sum::<u64>();
        let customers_cpu = customers.iter().filter_map(|c| c["cpu_s"].as_f64()).sum::<f64>();
        cpu_used.push(("customers".into(), customers_cpu));
        let latency = crate::screen::merged_latency(
            &(1..=self.customers.len()).map(|n| self.dir.join(format!("customers{n}.hgrm"))).collect::<Vec<_>>(),
        );
        let mut record = self.status("record").unwrap_or(Value::Null);
        // Per-symbol positions: a hundred lines nobody reads in a summary.
        if let Some(r) = record.as_object_mut() {
            r.remove("next_seq");
        }
        let engine = self.status("engine").unwrap_or(Value::Null);
        Ok(json!({
            "orders_sent": sum("orders_sent"),
            "orders_acked": sum("orders_acked"),
            "rejects": sum("rejects"),
            "trades": report["trades"].as_u64().or(engine["trades"].as_u64()).unwrap_or(0),
            "ack_latency_us": latency,
            "cpu": crate::cpu::summary(&cpu_used, sum("orders_sent")),
            "md_messages": record["messages"],
            "md_gaps_unrecovered": report["md_gaps"].as_u64().or(record["gaps_unrecovered"].as_u64()),
            "audit_ok": report["ok"].as_bool() == Some(true) && out.status.success(),
            "rpo_orders": report["rpo_orders"],
            "rto_ms": report["rto_ms"],
            "failovers": report["failovers"],
            "audit": report,
            "audit_seconds": audit_s,
            "duration_s": customers.iter().filter_map(|c| c["duration_s"].as_f64()).fold(0.0, f64::max),
            "sessions": sum("sessions"),
            "engine": engine,
            "overlay_drops": overlay_drops,
            "gateways": (1..=self.gateways.len()).filter_map(|n| self.status(&format!("gw{n}"))).collect::<Vec<_>>(),
            "record": record,
        }))
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        self.forward = None;
        for p in self.customers.iter_mut().chain(self.gateways.iter_mut()) {
            p.stop(Duration::from_secs(3));
        }
        self.record.stop(Duration::from_secs(3));
        if let Some(mut v) = self.view.take() {
            v.stop(Duration::from_secs(3));
        }
        self.engine.stop(Duration::from_secs(3));
        if let Some(mut d) = self.dr.take() {
            d.stop(Duration::from_secs(3));
        }
    }
}

fn now_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// Each host's weaversd drop counters and TAP queue drops (nonzero only).
fn overlay_drops(lab: &Lab) -> Value {
    let mut hosts = serde_json::Map::new();
    for i in 1..=lab.len() {
        let Ok(st) = lab.try_cli_json(i, &["status", "--json"]) else { continue };
        let mut d = serde_json::Map::new();
        for r in st["drops"].as_array().into_iter().flatten() {
            if let (Some(reason), Some(n)) = (r["reason"].as_str(), r["count"].as_u64()) {
                if n > 0 {
                    d.insert(reason.to_string(), n.into());
                }
            }
        }
        if let Some(n) = st["tap_tx_dropped"].as_u64().filter(|&n| n > 0) {
            d.insert("tap_tx_dropped".into(), n.into());
        }
        hosts.insert(format!("h{i}"), Value::Object(d));
    }
    Value::Object(hosts)
}
