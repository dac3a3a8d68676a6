//! Watching the policy directory. Editors save by writing a temporary file and renaming it, and
//! Kubernetes swaps a ConfigMap by replacing a symlink: so the whole directory is watched and
//! events are debounced; the reload itself decides whether anything changed (by SHA-256).

use notify::{RecursiveMode, Watcher as _};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

/// Keeps the watch alive; dropping it stops watching.
pub struct Watcher {
    _inner: notify::RecommendedWatcher,
}

/// Calls `on_change` once the directory has been quiet for `debounce` after any change.
pub fn watch(
    dir: &Path,
    debounce: Duration,
    on_change: impl Fn() + Send + 'static,
) -> notify::Result<Watcher> {
    let (tx, rx) = mpsc::channel::<()>();
    let mut inner = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res {
            if !ev.kind.is_access() && ev.paths.iter().any(|p| relevant(p)) {
                let _ = tx.send(());
            }
        }
    })?;
    inner.watch(dir, RecursiveMode::NonRecursive)?;
    std::thread::Builder::new()
        .name("menwei-policy-watch".into())
        .spawn(move || debounce_loop(&rx, debounce, on_change))
        .map_err(|e| notify::Error::generic(&e.to_string()))?;
    Ok(Watcher { _inner: inner })
}

/// Policy files, and Kubernetes' `..data` / `..2024_...` entries swapped when a ConfigMap changes.
/// Anything else written in the directory (editor swap files, logs) does not trigger a reload.
fn relevant(p: &Path) -> bool {
    p.extension().is_some_and(|x| x == "toml")
        || p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(".."))
}

fn debounce_loop(rx: &mpsc::Receiver<()>, debounce: Duration, on_change: impl Fn()) {
    // Ends when the watcher (the sender) is dropped.
    while rx.recv().is_ok() {
        loop {
            match rx.recv_timeout(debounce) {
                Ok(()) => continue,
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        }
        on_change();
    }
}
