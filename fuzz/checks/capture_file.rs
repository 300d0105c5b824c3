//! Arbitrary bytes as a capture file through the whole `read` pipeline: errors are fine,
//! panics are not.

use std::io::Write;

use idemwatch::config::Config;
use idemwatch::output::Output;
use idemwatch::pipeline::run_read;

/// One input through the target: a panic, a failed assertion included, is a finding.
pub fn check(data: &[u8]) {
    let Ok(mut f) = tempfile_in_tmp() else {
        return;
    };
    if f.1.write_all(data).is_err() {
        return;
    }
    let config = Config {
        threads: 1,
        ..Config::default()
    };
    let mut out = Output::from_writer(Box::new(std::io::sink()));
    let _ = run_read(&config, &[f.0.clone()], None, &mut out);
    let _ = std::fs::remove_file(&f.0);
    let _ = &mut f;
}

fn tempfile_in_tmp() -> std::io::Result<(std::path::PathBuf, std::fs::File)> {
    let p = std::env::temp_dir().join(format!("idemwatch-fuzz-{}.pcap", std::process::id()));
    let f = std::fs::File::create(&p)?;
    Ok((p, f))
}
