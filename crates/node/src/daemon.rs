//! `ferry start`: runs a node until Ctrl-C or SIGTERM.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use anyhow::Context;
use ferry_net::beacon::BeaconSocket;
use ferry_net::{NetConfig, build_swarm};
use ferry_store::{DataDir, Store, identity};
use rand::Rng;
use tokio::sync::{mpsc, watch};

use crate::config::{ConfigFile, Settings, StartOptions};
use crate::control::ControlFile;
use crate::control::server::{ApiState, router};
use crate::dtn::Dtn;
use crate::engine::{Engine, Parts};
use crate::jobs::Jobs;

/// Runs the node in the foreground; returns after a clean shutdown.
pub async fn run(options: StartOptions) -> anyhow::Result<()> {
    let dir = DataDir::lock(&options.data_dir)?;
    let settings = Settings::resolve(options, ConfigFile::load(dir.path())?)?;
    let keypair = identity::load_or_create(&dir)?;
    let local = keypair.public().to_peer_id();
    let name = settings
        .name
        .clone()
        .unwrap_or_else(|| default_name(&local.to_string()));
    let store =
        Arc::new(Store::open_with(&dir, settings.store)?.with_retention(settings.retention));
    recover_partials(&store);
    let dtn = Arc::new(Dtn::open(
        store.clone(),
        keypair.clone(),
        settings.dtn.clone(),
    )?);
    tracing::info!(peer = %local, %name, data_dir = %dir.path().display(), "starting");

    let mut swarm = build_swarm(
        keypair.clone(),
        &NetConfig {
            mdns: settings.mdns,
            upnp: settings.upnp,
            relay: settings.relay.clone(),
            ..NetConfig::default()
        },
    )?;
    listen(&mut swarm, &settings)?;
    let beacon = if settings.beacon {
        Some(BeaconSocket::bind(settings.beacon_port).with_context(|| {
            format!(
                "cannot open the beacon port {} (pick another with --beacon-port, or turn beacons off with --no-beacon)",
                settings.beacon_port
            )
        })?)
    } else {
        None
    };

    let (new_messages, new_messages_rx) = watch::channel(store.last_seq()?);
    let (commands, commands_rx) = mpsc::channel(64);
    let token = random_token();
    let jobs = Jobs::default();
    let api = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .context("cannot open the control API on 127.0.0.1")?;
    let api_url = format!("http://{}", api.local_addr()?);
    let app = router(ApiState {
        token: token.clone().into(),
        store: store.clone(),
        commands,
        new_messages: new_messages_rx,
        jobs: jobs.clone(),
        dtn: dtn.clone(),
    });
    // TCPCL binds before control.json says the node is up, so a failure to bind
    // is reported before anyone is told to use the node.
    let tcpcl = crate::dtn::tcpcl::start(dtn.clone(), &settings.tcpcl).await?;
    let server = tokio::spawn(async move { axum::serve(api, app).await });
    ControlFile {
        url: api_url.clone(),
        token,
        pid: std::process::id(),
    }
    .write(dir.path())
    .context("cannot write control.json")?;
    tracing::info!(url = %api_url, "control API ready");

    let (engine, work_done) = Engine::new(Parts {
        swarm,
        keypair,
        name,
        store: store.clone(),
        beacon,
        data_dir: dir.path().display().to_string(),
        new_messages,
        jobs,
        bootstrap: settings.bootstrap.clone(),
        dtn: dtn.clone(),
        dtn_peer_rate: settings.dtn.peer_rate,
    });
    engine.run(commands_rx, work_done, shutdown_signal()).await;
    for task in tcpcl {
        task.abort();
    }
    if let Err(e) = dtn.maintain() {
        tracing::error!("cannot save DTN state: {e}");
    }
    // Downloads commit their progress in batches: commit what is verified.
    if let Err(e) = store.flush_blobs() {
        tracing::error!("cannot save download progress: {e}");
    }
    server.abort();
    ControlFile::remove(dir.path());
    tracing::info!("stopped");
    Ok(())
}

/// Listens on every configured address. With the default set, an address
/// family the host does not have (IPv6 in a bare container) is skipped.
fn listen(
    swarm: &mut ferry_net::libp2p::Swarm<ferry_net::Behaviour>,
    settings: &Settings,
) -> anyhow::Result<()> {
    if !settings.default_listen {
        return Ok(ferry_net::listen_all(swarm, &settings.listen)?);
    }
    let mut listening = 0;
    for addr in &settings.listen {
        match ferry_net::listen_all(swarm, std::slice::from_ref(addr)) {
            Ok(()) => listening += 1,
            Err(e) => tracing::debug!("{e}"),
        }
    }
    anyhow::ensure!(
        listening > 0,
        "cannot listen on any default address; give one with --listen"
    );
    Ok(())
}

/// Reopens every partial download, which recovers the groups it had written
/// but not yet recorded when the node stopped (a kill, a crash), so that
/// `ferry ls` shows them and a resumed `ferry get` does not fetch them again.
fn recover_partials(store: &Store) {
    let partials = match store.blobs() {
        Ok(blobs) => blobs.into_iter().filter(|b| !b.complete),
        Err(e) => return tracing::warn!("cannot list partial downloads: {e}"),
    };
    for blob in partials {
        if let Err(e) = store.begin_partial(&blob.id, blob.size, blob.kind, blob.name.clone()) {
            tracing::warn!(id = %blob.id, "cannot reopen a partial download: {e}");
        }
    }
}

/// `ferry-` and the last six characters of the peer id: distinct enough on a
/// LAN, and it does not reveal the machine's host name.
fn default_name(peer_id: &str) -> String {
    format!("ferry-{}", &peer_id[peer_id.len().saturating_sub(6)..])
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot wait for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!("cannot wait for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
