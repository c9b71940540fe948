//! `aex`: the reference exchange's command. It lists the symbols and
//! registers their multicast groups in the overlay DNS (so every process
//! finds `TICKER.orders.aex.weavers.local` and `TICKER.md.aex.weavers.local`
//! by name), and runs the processes of `exchange/ARCHITECTURE.md`: engine,
//! gateway, customers, record, audit, view, journal.
//!
//! A process is a variant holding its module's `Args`
//! (`aex::app::NAME::Args`; `aex journal`'s module is `app::dr_journal`),
//! dispatched to that module's `run` through [`exit_with`].

use aex::symbols::SymbolTable;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::{Command, ExitCode};

/// AEX, the reference exchange that rides weavers.
#[derive(Debug, Parser)]
#[command(name = "aex", version)]
struct Cli {
    /// Symbols file (`INDEX TICKER ORDERS_GROUP MD_GROUP REF_PRICE` a line);
    /// default: the 100 symbols shipped with AEX
    #[arg(long, global = true)]
    symbols: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Print the symbols with their groups and DNS names
    Symbols,
    /// Register every symbol's orders and market-data groups in the overlay
    /// DNS (`weavers dns add NAME GROUP --owner aex`), on the host whose
    /// daemon answers on --socket
    Register {
        /// The weaversd control socket (or WEAVERS_SOCKET)
        #[arg(long, env = "WEAVERS_SOCKET", default_value = "/run/weavers/weavers.sock")]
        socket: PathBuf,
        /// The `weavers` command to run
        #[arg(long, default_value = "weavers")]
        weavers: PathBuf,
    },
    /// Run a matching engine: orders from the symbols' orders groups,
    /// journaled (group commit), market data and reports out once durable
    Engine(aex::app::engine::Args),
    /// Order entry for customers over TCP: orders to the engines, reports back
    Gateway(aex::app::gateway::Args),
    /// Load generator: many customer sessions sending orders to a gateway
    Customers(aex::app::customers::Args),
    /// Record every market-data stream from message 1 to a file (gaps re-requested)
    Record(aex::app::record::Args),
    /// Serve a live HTML view of the books (SSE, /api/books)
    View(aex::app::view::Args),
    /// Replay a journal and check it, a market-data record and gateways' acks
    Audit(aex::app::audit::Args),
    /// The DR site's journal: takes the primary's records over TCP, fsyncs
    /// them before acknowledging, fences older epochs, and on the primary's
    /// loss can replace itself with a recovering engine (pilot light)
    Journal(aex::app::dr_journal::Args),
    /// Make a deployment's stream keys, one file per role (mode 0600, never
    /// overwritten): DIR/engine.keys (md, gw.N, dr: the engines and a DR
    /// site that may become one), DIR/md.keys (md: record, view),
    /// DIR/gwN.keys (gw.N: gateway N), DIR/dr.keys (dr: `aex journal`)
    Keys {
        /// The directory to write the files into (created if absent)
        #[arg(long)]
        dir: PathBuf,
        /// The gateways' ids, `A-B` or a list (`1,2`)
        #[arg(long)]
        gateways: String,
    },
    /// Make random passwords for broker/dealers: the gateways' logins file
    /// (a salted hash each) and the broker/dealers' passwords file (both
    /// mode 0600, never overwritten)
    Logins {
        /// Broker/dealer numbers, `A-B` (or `A`), each 1..=999
        #[arg(long, value_parser = aex::app::customers::parse_range)]
        brokers: (u16, u16),
        /// The gateways' file (`bBBB SALT HASH` a line): `aex gateway --logins`
        #[arg(long)]
        logins: PathBuf,
        /// The broker/dealers' file (`bBBB PASSWORD` a line): `aex customers --passwords`
        #[arg(long)]
        passwords: PathBuf,
    },
}

/// Runs a process's `run`, printing its error as `aex: ...` (exit 1).
fn exit_with(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("aex: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(path: Option<&PathBuf>) -> Result<SymbolTable, String> {
    match path {
        None => Ok(SymbolTable::shipped()),
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| format!("reading {}: {e}", p.display()))?;
            SymbolTable::parse(&text).map_err(|e| format!("{}: {e}", p.display()))
        }
    }
}

/// Parses gateway ids: `A-B` or `1,2,5` (each 1..=255).
fn parse_ids(spec: &str) -> anyhow::Result<Vec<u8>> {
    let mut ids = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let p = |x: &str| x.trim().parse::<u8>().ok().filter(|&n| n > 0);
        match (p(a), p(b)) {
            (Some(a), Some(b)) if a <= b => ids.extend(a..=b),
            _ => anyhow::bail!("--gateways {spec}: want ids 1..=255 as A-B or a list"),
        }
    }
    ids.sort_unstable();
    ids.dedup();
    anyhow::ensure!(!ids.is_empty(), "--gateways {spec}: no gateway");
    Ok(ids)
}

/// `aex keys`: one key file per role.
fn make_keys(dir: &std::path::Path, gateways: &str) -> anyhow::Result<()> {
    use aex::auth::Keyring;
    let ids = parse_ids(gateways)?;
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
    let all = Keyring::generate(ids.iter().copied());
    let mut files = vec![("engine.keys".to_string(), all.clone()), ("md.keys".to_string(), all.market_data_only())];
    for &g in &ids {
        files.push((format!("gw{g}.keys"), all.gateway_only(g)));
    }
    files.push(("dr.keys".to_string(), all.dr_only()));
    for (name, ring) in &files {
        ring.write_new(&dir.join(name))?;
    }
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    println!("wrote {} in {}", names.join(" "), dir.display());
    Ok(())
}

/// `aex logins`: random passwords, their hashes for the gateways.
fn make_logins(brokers: (u16, u16), logins: &std::path::Path, passwords: &std::path::Path) -> anyhow::Result<()> {
    use aex::app::gateway::login::{passwords_text, Logins};
    use aex::auth::keys::write_private;
    let (l, pws) = Logins::generate(brokers.0..=brokers.1);
    write_private(logins, &l.to_text())?;
    write_private(passwords, &passwords_text(&pws))?;
    println!("wrote {} and {} for {} broker/dealers", logins.display(), passwords.display(), pws.len());
    Ok(())
}

fn main() -> ExitCode {
    weavers_docgen::generate_if_asked(<Cli as clap::CommandFactory>::command);
    let cli = Cli::parse();
    let table = match load(cli.symbols.as_ref()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("aex: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Cmd::Journal(args) => exit_with(aex::app::dr_journal::run(args, &table)),
        Cmd::Record(args) => exit_with(aex::app::record::run(args, &table)),
        Cmd::Audit(args) => exit_with(aex::app::audit::run(args, &table)),
        Cmd::View(args) => exit_with(aex::app::view::run(args, &table)),
        Cmd::Gateway(args) => exit_with(aex::app::gateway::run(args, &table)),
        Cmd::Customers(args) => exit_with(aex::app::customers::run(args, &table)),
        Cmd::Keys { dir, gateways } => exit_with(make_keys(&dir, &gateways)),
        Cmd::Logins { brokers, logins, passwords } => exit_with(make_logins(brokers, &logins, &passwords)),
        Cmd::Engine(args) => match aex::app::engine::run(args, &table) {
            // Fenced by DR: a newer primary exists (status 3, for supervisors).
            Err(e) if e.downcast_ref::<aex::app::engine::FencedError>().is_some() => {
                eprintln!("aex: {e:#}");
                ExitCode::from(3)
            }
            r => exit_with(r),
        },
        Cmd::Symbols => {
            use std::fmt::Write as _;
            let mut out = format!("{:<6} {:<8} {:<15} {:<15} NAMES\n", "INDEX", "TICKER", "ORDERS", "MARKET DATA");
            for s in table.iter() {
                let _ = writeln!(
                    out,
                    "{:<6} {:<8} {:<15} {:<15} {} {}",
                    s.index,
                    s.ticker.as_str(),
                    s.orders_group,
                    s.md_group,
                    s.orders_fqdn(),
                    s.md_fqdn()
                );
            }
            // A closed pipe (`aex symbols | head`) is not an error worth a panic.
            let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), out.as_bytes());
            ExitCode::SUCCESS
        }
        Cmd::Register { socket, weavers } => {
            let mut names = 0;
            for s in table.iter() {
                for (name, group) in [(s.orders_name(), s.orders_group), (s.md_name(), s.md_group)] {
                    let out = Command::new(&weavers)
                        .arg("--socket")
                        .arg(&socket)
                        .args(["dns", "add", &name, &group.to_string(), "--owner", "aex"])
                        .output();
                    match out {
                        Ok(o) if o.status.success() => names += 1,
                        Ok(o) => {
                            eprintln!(
                                "aex: weavers dns add {name} {group}: {}",
                                String::from_utf8_lossy(&o.stderr).trim()
                            );
                            return ExitCode::FAILURE;
                        }
                        Err(e) => {
                            eprintln!("aex: running {}: {e}", weavers.display());
                            return ExitCode::FAILURE;
                        }
                    }
                }
            }
            println!("registered {names} names for {} symbols", table.len());
            ExitCode::SUCCESS
        }
    }
}
