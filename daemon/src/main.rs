//! weaversd: the weavers daemon. See `weaversd --help` and the README.
//!
//! This file: arguments, logging, the runtime, signals, and the order of
//! shutdown and teardown. Start-up and restore are [`startup`]; the
//! data-plane task is [`dataplane`], the commands it answers [`commands`].

mod api;
mod authority;
mod commands;
mod config;
mod control;
mod dataplane;
mod dns;
mod host;
mod kernel_io;
mod logging;
mod metrics;
mod netdev;
mod password;
mod startup;
mod state;
mod udp;

use clap::Parser;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};

fn main() {
    weavers_docgen::generate_if_asked(<config::Flags as clap::CommandFactory>::command);
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let flags = match config::Flags::try_parse_from(&args) {
        Ok(f) => f,
        Err(e) if e.use_stderr() && logging::json_requested(&args) => logging::usage_error(&e),
        Err(e) => e.exit(),
    };
    let logged = config::log_options(&flags).and_then(|o| logging::init(&o));
    if let Err(e) = logged {
        // Log as far as the flags alone say, then stop on the error.
        let flags_only = logging::LogOptions { format: flags.log_format.unwrap_or_default(), ..Default::default() };
        let _ = logging::init(&flags_only);
        exit_on(e);
    }
    if flags.print_public_key {
        match config::state_dir(&flags).and_then(|d| state::StateDir::open(&d)?.identity()) {
            Ok(id) => println!("{}", id.public),
            Err(e) => exit_on(e),
        }
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    if let Err(e) = rt.block_on(run(flags)) {
        exit_on(e);
    }
}

/// Reports an error that stops the daemon (as a log record in JSON mode) and exits 1.
fn exit_on(e: anyhow::Error) -> ! {
    logging::fatal(&e);
    std::process::exit(1)
}

async fn run(flags: config::Flags) -> anyhow::Result<()> {
    let settings = config::Settings::load(flags)?;
    let startup::Started { dataplane: dp, listener, netdev, tap_name, public_key, overlay_mtu } =
        startup::start(&settings).await?;

    // Shutdown: SIGTERM or SIGINT tells every task through one watch channel.
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let (cmd_tx, cmd_rx) = mpsc::channel(64);
    let api_task = tokio::spawn(api::serve(listener, cmd_tx.clone(), stopped(stop_rx.clone())));
    let metrics_task =
        settings.metrics_addr.map(|addr| tokio::spawn(metrics::serve(addr, cmd_tx.clone(), stopped(stop_rx.clone()))));
    // SIGHUP: read the certificate again now (network-authority mode).
    let mut hup = signal(SignalKind::hangup())?;
    let hup_tx = cmd_tx.clone();
    let hup_task = tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reading the certificate again");
            if hup_tx.send(control::Command::ReloadCert).await.is_err() {
                break;
            }
        }
    });
    drop(cmd_tx);

    tracing::info!(
        name = %settings.name,
        public_key = %public_key,
        listen = %settings.listen,
        bridge = %settings.bridge,
        overlay_mtu,
        "weaversd ready"
    );
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let signalled = async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        }
        let _ = stop_tx.send(true);
    };
    // Returns after the data plane dropped the TAP, which removes it.
    dp.run(cmd_rx, signalled).await;
    hup_task.abort();
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);

    // Best-effort teardown: collect every error rather than stopping at the
    // first. The bridge stays while containers are attached to it.
    let mut errors = netdev.teardown(&settings.bridge, &tap_name).await;
    match api_task.await {
        Ok(Err(e)) => errors.push(format!("control API: {e:#}")),
        Err(e) => errors.push(format!("control API task: {e}")),
        Ok(Ok(())) => {}
    }
    if let Some(t) = metrics_task {
        if let Ok(Err(e)) = t.await {
            errors.push(format!("metrics: {e:#}"));
        }
    }
    if errors.is_empty() {
        tracing::info!("stopped cleanly");
        Ok(())
    } else {
        anyhow::bail!("shutdown: {}", errors.join("; "))
    }
}
