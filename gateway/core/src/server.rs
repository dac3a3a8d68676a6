//! Assembling the Pingora server from the first snapshot: one proxy service per listener, the
//! admin service, health checks and the reload loop. Pingora's own command-line parsing is not
//! used: menwei's CLI stays in charge, and the pid file and grace periods are ours.

use crate::admin::Admin;
use crate::live::Store;
use crate::metrics::Metrics;
use crate::pipeline::Gateway;
use crate::reload::{HealthChecks, Reloader};
use menwei_policy::Snapshot;
use pingora::apps::HttpServerOptions;
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::server::configuration::ServerConf;
use pingora::server::Server;
use pingora::services::background::background_service;
use pingora::services::listening::Service;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Fails early, with a clear message, when an address cannot be bound.
fn probe_bind(addrs: impl IntoIterator<Item = std::net::SocketAddr>) -> Result<(), String> {
    for a in addrs {
        std::net::TcpListener::bind(a).map_err(|e| format!("cannot listen on {a}: {e}"))?;
    }
    Ok(())
}

fn conf(snapshot: &Snapshot) -> ServerConf {
    let grace = snapshot.grace_period.as_secs();
    let tmp = std::env::temp_dir();
    ServerConf {
        threads: snapshot.restart.threads,
        work_stealing: false,
        pid_file: tmp
            .join(format!("menwei-{}.pid", std::process::id()))
            .display()
            .to_string(),
        upgrade_sock: tmp
            .join(format!("menwei-{}-upgrade.sock", std::process::id()))
            .display()
            .to_string(),
        grace_period_seconds: Some(grace),
        graceful_shutdown_timeout_seconds: Some(grace.max(1)),
        upstream_keepalive_pool_size: snapshot.restart.upstream_keepalive_pool,
        ..ServerConf::default()
    }
}

/// Serves until a shutdown signal. Returns an error only when the server cannot start.
pub fn run(dir: PathBuf, snapshot: Snapshot) -> Result<(), String> {
    let listeners = snapshot.restart.listeners.clone();
    let admin_addr = snapshot.restart.admin;
    probe_bind(listeners.iter().map(|l| l.addr).chain([admin_addr]))?;
    menwei_sso::jwt::crypto_ready()?;
    let conf = Arc::new(conf(&snapshot));
    let metrics = Metrics::new().map_err(|e| format!("metrics: {e}"))?;
    let store = Arc::new(Store::new(dir.clone(), snapshot, metrics));
    let mut server = Server::new_with_opt_and_conf(None, self::conf(&store.current().snapshot));
    server.bootstrap();
    for l in &listeners {
        let gw = Gateway {
            store: store.clone(),
        };
        let mut svc =
            pingora::proxy::http_proxy_service_with_name(&conf, gw, &format!("menwei {}", l.name));
        // A response whose head and body fit in the write buffer leaves in one write.
        let buffer = L4BufferSettings::default().write(l.write_buffer);
        if l.tls {
            let mut tls = TlsSettings::intermediate("", "")
                .map_err(|e| format!("TLS listener {}: {e}", l.name))?;
            tls.set_cert_resolver(Arc::new(crate::tls::SniResolver {
                store: store.clone(),
            }));
            tls.enable_h2();
            svc.add_listener(
                ListenerConfig::tcp(l.addr.to_string())
                    .tls(tls)
                    .l4_buffer(buffer),
            );
        } else {
            svc.add_listener(ListenerConfig::tcp(l.addr.to_string()).l4_buffer(buffer));
        }
        if l.h2c {
            if let Some(app) = svc.app_logic_mut() {
                let mut options = HttpServerOptions::default();
                options.h2c = true;
                app.server_options = Some(options);
            }
        }
        server.add_service(svc);
    }
    let draining = Arc::new(AtomicBool::new(false));
    let mut admin = Service::new(
        "menwei admin".to_string(),
        Admin {
            store: store.clone(),
            draining,
            listeners: listeners.iter().map(|l| l.addr).collect(),
            listening: AtomicBool::new(false),
        },
    );
    admin.add_tcp(&admin_addr.to_string());
    server.add_service(admin);
    server.add_service(background_service(
        "health checks",
        HealthChecks {
            store: store.clone(),
        },
    ));
    server.add_service(background_service(
        "alerts",
        crate::reload::Alerts {
            store: store.clone(),
        },
    ));
    server.add_service(background_service(
        "ban list",
        crate::reload::BanSync {
            store: store.clone(),
        },
    ));
    server.add_service(background_service(
        "policy reload",
        Reloader {
            store: store.clone(),
            dir,
        },
    ));
    tracing::info!(
        version = 1,
        listeners = ?listeners.iter().map(|l| format!("{} {}{}", l.name, if l.tls { "https://" } else { "http://" }, l.addr)).collect::<Vec<_>>(),
        admin = %admin_addr,
        "menwei serving policy version 1"
    );
    // `run` returns once the server has shut down (`run_forever` would exit the process there,
    // before the caller's destructors write the access log's last lines).
    server.run(pingora::server::RunArgs::default());
    Ok(())
}
