//! Stopping cleanly: every role of the binary stops on SIGTERM or Ctrl-C.

/// Resolves on SIGTERM or Ctrl-C: every role of the binary stops on either. The handlers are installed when
/// this is called, not when the future is first polled, so a role calls it before it starts listening: a
/// SIGTERM that arrives as soon as the port opens still stops it cleanly rather than killing it.
pub fn signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let signals = signal(SignalKind::terminate()).and_then(|t| Ok((t, signal(SignalKind::interrupt())?)));
        async move {
            match signals {
                Ok((mut terminate, mut interrupt)) => {
                    tokio::select! {
                        _ = terminate.recv() => {}
                        _ = interrupt.recv() => {}
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for SIGTERM");
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
            tracing::info!("shutting down");
        }
    }
    #[cfg(not(unix))]
    async move {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
    }
}
