//! `live --tls-keylog FILE`: key-log files followed as applications append to them, into the
//! run's [`Keys`].
//!
//! | the file | what happens |
//! |---|---|
//! | grows | the new complete lines are read; a partial last line waits for its end |
//! | is missing or unreadable | logged once, then looked for again at each poll |
//! | is truncated (size below what was read) | read again from the start |
//! | is replaced (another inode at the path: rotation) | the old one is read to its end, then the new one from the start |
//!
//! One thread polls every file every [`POLL`]: a stat and, when it grew, a read. A poll is
//! cheap and, unlike inotify, sees files that appear in directories created later, across
//! bind mounts and on any file system. The secrets stay in memory only (the store is bounded,
//! [`super::MAX_RANDOMS`]); bad lines are logged by number and reason, never by content.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use zeroize::Zeroize;

use super::Keys;
use super::keylog::{KeyLogReader, exposure_warning};

/// How often the files are looked at: well inside the 1.5 s a late secret may take to reach
/// an alert.
pub const POLL: Duration = Duration::from_millis(50);
/// Bytes read from one file per poll, so that a huge file cannot hold the others back.
const READ_PER_POLL: usize = 4 << 20;

/// One followed file.
struct Followed {
    path: PathBuf,
    file: Option<File>,
    /// (device, inode) of the open file, to see a replacement.
    id: Option<(u64, u64)>,
    /// Bytes read from the open file.
    pos: u64,
    reader: KeyLogReader,
    /// Why it could not be opened, last time (logged once per cause).
    missing: Option<String>,
}

impl Followed {
    fn new(path: PathBuf) -> Followed {
        Followed {
            path,
            file: None,
            id: None,
            pos: 0,
            reader: KeyLogReader::new(),
            missing: None,
        }
    }

    /// Reads what is new; opens, reopens and rewinds as the table of the module says.
    fn poll(&mut self, keys: &Keys, buf: &mut [u8]) {
        if self.poll_file(keys, buf) {
            // The replacement is read at once.
            self.poll_file(keys, buf);
        }
    }

    /// One pass; true when the file at the path replaced the one read and was opened.
    fn poll_file(&mut self, keys: &Keys, buf: &mut [u8]) -> bool {
        if self.file.is_none() {
            self.open();
        }
        let Some(file) = self.file.as_mut() else {
            return false;
        };
        let at_path = std::fs::metadata(&self.path).ok();
        if let (Some(meta), Some(id)) = (&at_path, self.id)
            && file_id(meta) == id
            && meta.len() < self.pos
        {
            tracing::info!(path = %self.path.display(), "TLS key log truncated: reading it from the start");
            if file.seek(SeekFrom::Start(0)).is_err() {
                self.close();
                return false;
            }
            self.pos = 0;
            self.reader.reset();
        }
        let mut read = 0usize;
        while read < READ_PER_POLL {
            let n = match file.read(buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!(path = %self.path.display(), "cannot read the TLS key log: {e}; opening it again");
                    self.close();
                    return false;
                }
            };
            read += n;
            self.pos += n as u64;
            let bytes = buf.get(..n).unwrap_or(&[]);
            let bad = keys.update(|log| self.reader.feed(bytes, log));
            for b in bad {
                // By number and reason only: a bad line may still hold a secret.
                tracing::info!(path = %self.path.display(), "TLS key log: {b}, skipped");
            }
        }
        buf.zeroize();
        // Read to its end and another file is at the path now: that one is next.
        let replaced = at_path
            .as_ref()
            .is_some_and(|m| Some(file_id(m)) != self.id);
        if read == 0 && replaced {
            tracing::info!(path = %self.path.display(), "TLS key log replaced: following the new file");
            self.close();
            self.open();
            return self.file.is_some();
        }
        false
    }

    fn open(&mut self) {
        let opened = File::open(&self.path).and_then(|f| {
            let meta = f.metadata()?;
            if meta.is_dir() {
                return Err(io::Error::other("is a directory"));
            }
            Ok((f, meta))
        });
        match opened {
            Ok((f, meta)) => {
                if let Some(w) = exposure_warning(&self.path, &meta) {
                    tracing::warn!("{w}");
                }
                tracing::info!(path = %self.path.display(), "following the TLS key log");
                self.id = Some(file_id(&meta));
                self.file = Some(f);
                self.pos = 0;
                self.reader.reset();
                self.missing = None;
            }
            Err(e) => {
                let why = e.to_string();
                if self.missing.as_deref() != Some(why.as_str()) {
                    tracing::warn!(
                        path = %self.path.display(),
                        "cannot open the TLS key log: {why}; looking for it again every {} ms",
                        POLL.as_millis()
                    );
                    self.missing = Some(why);
                }
            }
        }
    }

    fn close(&mut self) {
        self.file = None;
        self.id = None;
        self.pos = 0;
        self.reader.reset();
    }
}

#[cfg(unix)]
fn file_id(meta: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

#[cfg(not(unix))]
fn file_id(meta: &std::fs::Metadata) -> (u64, u64) {
    (0, meta.len())
}

/// The thread following the key logs; stops when dropped.
pub struct Follower {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Follower {
    /// Reads what the files hold now (before the first packet is captured), then follows them
    /// on a thread of their own.
    pub fn start(paths: &[PathBuf], keys: Arc<Keys>) -> io::Result<Follower> {
        let mut files: Vec<Followed> = paths.iter().cloned().map(Followed::new).collect();
        let mut buf = vec![0u8; 64 * 1024];
        for f in &mut files {
            f.poll(&keys, &mut buf);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("tls-keylog".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::park_timeout(POLL);
                    for f in &mut files {
                        f.poll(&keys, &mut buf);
                    }
                }
            })?;
        Ok(Follower {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// Reads a file the way `live` follows it, once (for tests and `check-config`-like uses).
#[cfg(test)]
fn poll_once(path: &std::path::Path, keys: &Keys, state: &mut Option<Followed>) {
    let f = state.get_or_insert_with(|| Followed::new(path.to_path_buf()));
    let mut buf = vec![0u8; 4096];
    f.poll(keys, &mut buf);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::keylog::KeyLog;
    use std::io::Write;
    use std::path::Path;

    const R1: &str = "0101010101010101010101010101010101010101010101010101010101010101";
    const R2: &str = "a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2";
    const R3: &str = "3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c";
    const S48: &str = "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e\
                       5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e";

    fn line(random: &str) -> String {
        format!("CLIENT_RANDOM {random} {S48}\n")
    }

    fn random(hex: &str) -> [u8; 32] {
        let mut r = [0u8; 32];
        for (i, b) in r.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex");
        }
        r
    }

    fn has(keys: &Keys, r: &str) -> bool {
        keys.read().tls12_master(&random(r)).is_some()
    }

    fn append(path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("append");
        f.write_all(text.as_bytes()).expect("write");
    }

    #[test]
    fn appended_lines_are_read_and_move_the_generation_on_a_partial_line_waits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keys.log");
        let keys = Keys::followed(KeyLog::new(16));
        let mut st = None;
        append(&path, &line(R1));
        poll_once(&path, &keys, &mut st);
        assert!(has(&keys, R1));
        let g = keys.generation();
        let l2 = line(R2);
        let (head, tail) = l2.split_at(40);
        append(&path, head);
        poll_once(&path, &keys, &mut st);
        assert!(!has(&keys, R2), "half a line is no secret yet");
        assert_eq!(keys.generation(), g, "nothing added, nothing to retry");
        append(&path, tail);
        poll_once(&path, &keys, &mut st);
        assert!(has(&keys, R2));
        assert!(keys.generation() > g);
        poll_once(&path, &keys, &mut st);
        assert_eq!(keys.read().counts().secrets, 2, "lines are read once");
    }

    #[test]
    fn a_missing_file_is_looked_for_until_it_appears() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("later/keys.log");
        let keys = Keys::followed(KeyLog::new(16));
        let mut st = None;
        poll_once(&path, &keys, &mut st);
        poll_once(&path, &keys, &mut st);
        assert!(keys.read().is_empty());
        std::fs::create_dir(dir.path().join("later")).expect("mkdir");
        append(&path, &line(R1));
        poll_once(&path, &keys, &mut st);
        assert!(has(&keys, R1));
    }

    #[test]
    fn a_truncated_file_is_read_again_from_its_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keys.log");
        let keys = Keys::followed(KeyLog::new(16));
        let mut st = None;
        append(&path, &(line(R1) + &line(R2)));
        poll_once(&path, &keys, &mut st);
        // Truncated in place (the inode stays), then a shorter content.
        std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .expect("truncate");
        append(&path, &line(R3));
        poll_once(&path, &keys, &mut st);
        assert!(has(&keys, R3));
    }

    #[test]
    fn a_rotated_file_is_read_to_its_end_then_the_new_one_from_its_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keys.log");
        let keys = Keys::followed(KeyLog::new(16));
        let mut st = None;
        append(&path, &line(R1));
        poll_once(&path, &keys, &mut st);
        // The application still writes to the old file after it was renamed away.
        let old = dir.path().join("keys.log.1");
        std::fs::rename(&path, &old).expect("rename");
        append(&old, &line(R2));
        append(&path, &line(R3));
        poll_once(&path, &keys, &mut st);
        poll_once(&path, &keys, &mut st);
        assert!(has(&keys, R1) && has(&keys, R2) && has(&keys, R3));
    }

    #[test]
    fn the_thread_reads_what_is_appended_and_stops_when_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keys.log");
        append(&path, &line(R1));
        let keys = Arc::new(Keys::followed(KeyLog::new(16)));
        let f = Follower::start(std::slice::from_ref(&path), keys.clone()).expect("start");
        assert!(has(&keys, R1), "what is there is read before start returns");
        append(&path, &line(R2));
        let mut seen = false;
        for _ in 0..200 {
            if has(&keys, R2) {
                seen = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(seen, "an appended line is read within 2 s");
        drop(f);
    }
}
