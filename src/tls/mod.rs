//! TLS decryption with the session secrets clients and servers log (NSS key-log format,
//! RFC 9850), between reassembly and HTTP.
//!
//! - [`keylog`]: key-log lines in, secrets by client random out (bounded; bad lines counted).
//! - [`record`]: a reassembled direction's bytes in, TLS records and handshake messages out.
//! - [`crypto`]: key schedules (TLS 1.2 PRF, TLS 1.3 HKDF-Expand-Label) and AEAD record
//!   decryption.
//! - [`sessions`]: the TLS 1.2 session cache (resumed connection to the full handshake whose
//!   master secret it uses), filled in capture order by the reading thread.
//!
//! - [`stage`]: the stage between reassembly and HTTP that uses them, per connection.
//! - [`follow`]: `live` follows key-log files as applications append to them.
//!
//! A key log is a credential: nothing here prints a secret, and the types holding one do not
//! show it in their `Debug`.

pub mod conn;
pub mod crypto;
pub mod follow;
pub mod keylog;
pub mod record;
pub mod sessions;
pub mod stage;
#[cfg(test)]
mod testing;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};

/// What the `tls` stage decrypts with.
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    /// The secrets of `--tls-keylog` files and of pcapng Decryption Secrets Blocks; `None`:
    /// none given (TLS connections are still recognised, counted and not parsed as HTTP).
    pub keys: Option<Arc<Keys>>,
}

impl TlsSettings {
    /// The key log's counters, into the run's.
    pub fn add_counters(&self, st: &mut crate::stats::Stats) {
        if let Some(k) = &self.keys {
            let c = k.read().counts();
            st.tls_keylog_secrets += c.secrets;
            st.tls_keylog_bad_lines += c.bad_lines;
        }
    }
}

/// The secrets a run decrypts with, shared by its flow workers. `read` loads them before the
/// first packet and never changes them, so what is decrypted cannot depend on timing; `live`
/// adds to them as key-log files grow ([`follow`]), and connections whose secrets came late
/// are tried again when the generation moves on.
#[derive(Debug)]
pub struct Keys {
    log: RwLock<keylog::KeyLog>,
    /// Moves on each time secrets are added after the start.
    generation: AtomicU64,
    /// Secrets may still arrive: connections lacking theirs wait (bounded) instead of being
    /// given up at their end.
    followed: bool,
}

impl Keys {
    /// Secrets known in full before the run.
    pub fn fixed(log: keylog::KeyLog) -> Keys {
        Keys {
            log: RwLock::new(log),
            generation: AtomicU64::new(0),
            followed: false,
        }
    }

    /// A store that files being followed fill while the run goes on.
    pub fn followed(log: keylog::KeyLog) -> Keys {
        Keys {
            followed: true,
            ..Keys::fixed(log)
        }
    }

    pub fn read(&self) -> RwLockReadGuard<'_, keylog::KeyLog> {
        // A writer that panicked left whole entries: the store is still usable.
        self.log.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the store; the generation moves on when secrets were added.
    pub fn update<R>(&self, f: impl FnOnce(&mut keylog::KeyLog) -> R) -> R {
        let mut log = self.log.write().unwrap_or_else(|e| e.into_inner());
        let before = log.counts().secrets;
        let r = f(&mut log);
        if log.counts().secrets != before {
            self.generation.fetch_add(1, Ordering::Release);
        }
        r
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn is_followed(&self) -> bool {
        self.followed
    }
}

/// Client randoms a run's key log holds at most (the oldest go first).
pub const MAX_RANDOMS: usize = 1 << 18;

/// The secrets for a `read`: every `--tls-keylog` file, then the Decryption Secrets Blocks of
/// the pcapng captures (not stdin, which cannot be read twice). Gives the settings and the
/// warnings to print (a key log other users can read); bad lines are logged at `-v`, by number
/// and reason only, and counted in the stats; an error names the key log that cannot be read.
pub fn load(
    keylog_files: &[std::path::PathBuf],
    captures: &[std::path::PathBuf],
) -> Result<(TlsSettings, Vec<String>), keylog::KeyLogFileError> {
    let mut keys = keylog::KeyLog::new(MAX_RANDOMS);
    let mut warnings = Vec::new();
    for f in keylog_files {
        let load = keys.add_file(f)?;
        warnings.extend(load.warning);
        // By number and reason only: a bad line may still hold a secret. At -v.
        for b in &load.bad_lines {
            tracing::info!(file = %f.display(), "TLS key log: {b}, skipped");
        }
    }
    let mut from_files = 0;
    for c in captures.iter().filter(|c| c.as_os_str() != "-") {
        let Ok(file) = std::fs::File::open(c) else {
            // The capture reader says why it cannot be opened.
            continue;
        };
        let s = crate::source::secrets::tls_secrets(std::io::BufReader::new(file));
        if s.blocks > 0 {
            from_files += s.blocks;
            keys.add_text(&s.keylog);
        }
    }
    if from_files > 0 {
        tracing::info!(
            blocks = from_files,
            "TLS secrets read from pcapng Decryption Secrets Blocks"
        );
    }
    let given = !keylog_files.is_empty() || from_files > 0;
    Ok((
        TlsSettings {
            keys: given.then(|| Arc::new(Keys::fixed(keys))),
        },
        warnings,
    ))
}
