//! `weavers`: the command line of the weavers overlay. It talks to the
//! daemon (`weaversd`) over the control socket; see `weavers --help`.

mod bugreport;
mod ca;
mod cli;
mod output;
mod password;
mod top;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use weavers_api::client::{decode, Bytes, Method};
use weavers_api::{
    routes, Client, ClientError, DnsAddRequest, DnsEntryInfo, DnsLookup, DnsRecordInfo, DnsRemoveRequest, DnsRemoved,
    DnsStats, ExposeRequest, ExposeResponse, GroupInfo, IpamStatus, PeerAddrs, PeerInfo, PingRequest, PingResult,
    RevocationInfo, RevocationRequest, RmPeerRequest, Status,
};

use crate::cli::{CaCommand, Cli, Command, DnsCommand, IpamCommand, PasswordCommand, PeerCommand};

fn main() -> ExitCode {
    weavers_docgen::generate_if_asked(<Cli as clap::CommandFactory>::command);
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("weavers: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(&cli)) {
        Ok(text) => {
            // A closed pipe (`weavers peer ls | head -1`) is not an error.
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(text.as_bytes());
            let _ = stdout.flush();
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("weavers: {}", output::clean(&e.to_string(), 1000));
            ExitCode::FAILURE
        }
    }
}

/// Why a command failed: the daemon's answer (or no answer), or something
/// found before asking it.
#[derive(Debug)]
enum Failure {
    Client(ClientError),
    Other(String),
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Failure::Client(e)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Client(e) => e.fmt(f),
            Failure::Other(s) => f.write_str(s),
        }
    }
}

/// Carry out one command; the text to print on stdout.
async fn run(cli: &Cli) -> Result<String, Failure> {
    let client = Client::new(&cli.socket);
    match &cli.command {
        Command::Status => {
            let body = client.get_raw(routes::STATUS).await?;
            render(cli.json, body, |s: Status| output::status_page(&s))
        }
        Command::Peer(PeerCommand::Ls) => {
            let body = client.get_raw(routes::PEERS).await?;
            render(cli.json, body, |p: Vec<PeerInfo>| output::peer_table(&p))
        }
        Command::Peer(PeerCommand::Add(args)) => {
            let req = PeerAddrs { peers: args.addrs.clone() };
            let body = client.send_raw(Method::POST, routes::PEERS, &req).await?;
            render(cli.json, body, |a: PeerAddrs| listed("added", "no peer added", &a.peers))
        }
        Command::Peer(PeerCommand::Rm(args)) => {
            let req = PeerAddrs { peers: args.addrs.clone() };
            let body = client.send_raw(Method::DELETE, routes::PEERS, &req).await?;
            render(cli.json, body, |a: PeerAddrs| listed("removed", "no peer removed", &a.peers))
        }
        Command::Groups => {
            let body = client.get_raw(routes::GROUPS).await?;
            render(cli.json, body, |g: Vec<GroupInfo>| output::group_table(&g))
        }
        Command::Dns(DnsCommand::Add(args)) => {
            let req = DnsAddRequest { name: args.name.clone(), addr: args.addr.clone(), owner: args.owner.clone() };
            let body = client.send_raw(Method::POST, routes::DNS, &req).await?;
            render(cli.json, body, |e: DnsEntryInfo| {
                format!("added {} {}\n", output::clean(&e.name, 300), output::clean(&e.addr, 64))
            })
        }
        Command::Dns(DnsCommand::Rm(args)) => {
            let req = DnsRemoveRequest { name: args.name.clone(), addr: args.addr.clone(), owner: args.owner.clone() };
            let body = client.send_raw(Method::DELETE, routes::DNS, &req).await?;
            render(cli.json, body, |r: DnsRemoved| output::dns_removed(&r.removed))
        }
        Command::Ipam(IpamCommand::Ls) => {
            let body = client.get_raw(routes::IPAM).await?;
            render(cli.json, body, |s: IpamStatus| output::ipam_page(&s))
        }
        Command::Ipam(IpamCommand::Rmpeer(args)) => {
            let req = RmPeerRequest { peer: args.peer.clone() };
            let body = client.send_raw(Method::POST, routes::IPAM_RMPEER, &req).await?;
            render(cli.json, body, |s: IpamStatus| output::ipam_page(&s))
        }
        Command::Dns(DnsCommand::Ls) => {
            let body = client.get_raw(routes::DNS).await?;
            render(cli.json, body, |r: Vec<DnsRecordInfo>| output::dns_table(&r))
        }
        Command::Dns(DnsCommand::Lookup(args)) => {
            let body = client.get_raw(&routes::dns_lookup(&args.name)).await?;
            render(cli.json, body, |l: DnsLookup| {
                l.addrs.iter().map(|a| format!("{}\n", output::clean(a, 64))).collect()
            })
        }
        Command::Dns(DnsCommand::Stats) => {
            let body = client.get_raw(routes::DNS_STATS).await?;
            render(cli.json, body, |s: DnsStats| output::dns_stats(&s))
        }
        Command::Top(args) => Ok(top::run(&client, std::time::Duration::from_secs(args.interval), args.count).await?),
        Command::Bugreport(args) => bugreport::run(&client, args.out.as_deref()).await.map_err(Failure::Other),
        Command::Ping(args) => {
            let req = PingRequest { peer: args.peer.clone() };
            let body = client.send_raw(Method::POST, routes::PING, &req).await?;
            render(cli.json, body, |p: PingResult| output::ping_line(&p))
        }
        Command::Ca(CaCommand::Init(args)) => ca::init(args).map_err(Failure::Other),
        Command::Ca(CaCommand::Sign(args)) => ca::sign(args).map_err(Failure::Other),
        Command::Ca(CaCommand::Revoke(args)) => {
            let (rev, file) = ca::revoke(&args.dir, &args.name).map_err(Failure::Other)?;
            let req = RevocationRequest { revocation: rev.to_text() };
            let body = client.send_raw(Method::POST, routes::REVOCATIONS, &req).await.map_err(|e| {
                Failure::Other(format!("revocation saved in {} but not handed to the daemon: {e}", file.display()))
            })?;
            render(cli.json, body, |r: RevocationInfo| {
                let what = if r.new { "revoked" } else { "already revoked" };
                format!(
                    "{what} {} (certificates valid from {} or earlier); saved in {}\n",
                    output::clean(&r.name, 80),
                    r.revoked_at,
                    file.display()
                )
            })
        }
        Command::Password(PasswordCommand::Generate) => Ok(password::output(&password::generate(), cli.json)),
        Command::Expose(args) => {
            let req = ExposeRequest { cidr: args.cidr.clone() };
            let body = client.send_raw(Method::POST, routes::EXPOSE, &req).await?;
            render(cli.json, body, |e: ExposeResponse| format!("{}\n", output::clean(&e.address, 64)))
        }
    }
}

/// `--json`: the daemon's JSON as it came (checked to be JSON); otherwise
/// the answer decoded as `T` and formatted by `human`.
fn render<T: serde::de::DeserializeOwned>(
    json: bool,
    body: Bytes,
    human: impl FnOnce(T) -> String,
) -> Result<String, Failure> {
    if json {
        decode::<serde_json::Value>(&body)?;
        let mut text = String::from_utf8_lossy(body.trim_ascii_end()).into_owned();
        text.push('\n');
        Ok(text)
    } else {
        Ok(human(decode::<T>(&body)?))
    }
}

/// One line per address: `added 192.0.2.1:6783`.
fn listed(verb: &str, none: &str, addrs: &[String]) -> String {
    if addrs.is_empty() {
        return format!("{none}\n");
    }
    addrs.iter().map(|a| format!("{verb} {}\n", output::clean(a, 300))).collect()
}
