//! Shutdown: a handle any part of the process can trigger or wait on, and the signal listener
//! that triggers it on SIGTERM or SIGINT (a second signal exits at once).

use tokio::sync::watch;

/// A shutdown trigger shared by the server, background tasks and tests.
#[derive(Debug, Clone)]
pub struct Shutdown {
    tx: watch::Sender<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    pub fn new() -> Self {
        Self { tx: watch::channel(false).0 }
    }

    /// A handle triggered by the first SIGTERM or SIGINT; a second one exits with code 130.
    pub fn on_signals() -> Self {
        let shutdown = Self::new();
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown signal received: draining (a second signal exits at once)");
            trigger.trigger();
            wait_for_signal().await;
            tracing::warn!("second shutdown signal: exiting now");
            std::process::exit(130);
        });
        shutdown
    }

    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    pub fn is_triggered(&self) -> bool {
        *self.tx.borrow()
    }

    /// Resolves once shutdown has been triggered.
    pub async fn wait(&self) {
        let mut rx = self.tx.subscribe();
        // An error means every sender is gone, which cannot happen while `self` lives.
        let _ = rx.wait_for(|stopped| *stopped).await;
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
