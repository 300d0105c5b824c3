//! `idemwatch(1)` and the shell completions, generated from the clap definitions at run time
//! (`idemwatch generate man|completions`), so they never drift from `--help`.

use std::io::{self, Write};

use clap::Command;
use roff::{Roff, bold, italic, roman};

use crate::tracker::AlertKind;

/// The whole manual page: the root command, then each subcommand with its usage, examples and
/// options (defaults included), exit status, alert kinds, files.
pub fn render(cmd: Command, w: &mut dyn Write) -> io::Result<()> {
    // NAME reads "idemwatch - <about>": the about without the name.
    let mut cmd = cmd.about("find Idempotency-Key misuse in HTTP traffic (HTTP/1.x and HTTP/2)");
    cmd.build();
    let man = clap_mangen::Man::new(cmd.clone())
        .section("1")
        .manual("idemwatch");
    man.render_title(w)?;
    man.render_name_section(w)?;
    man.render_synopsis_section(w)?;
    man.render_description_section(w)?;
    man.render_options_section(w)?;
    let subs: Vec<&Command> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        .collect();
    // One page for all: the commands are described below, not in pages of their own.
    let mut r = Roff::new();
    r.control("SH", ["COMMANDS"]);
    for sub in &subs {
        r.control("TP", []);
        r.text([bold(sub.get_name().to_string())]);
        r.text([roman(
            sub.get_about().map(|a| a.to_string()).unwrap_or_default(),
        )]);
    }
    r.to_writer(w)?;
    for sub in subs {
        let name = sub.get_name().to_string();
        let mut r = Roff::new();
        r.control(
            "SH",
            [format!("IDEMWATCH {}", name.to_uppercase()).as_str()],
        );
        if let Some(about) = sub.get_long_about().or(sub.get_about()) {
            r.text([roman(about.to_string())]);
        }
        let mut s = sub.clone().bin_name(format!("idemwatch {name}"));
        let usage = s.render_usage().to_string();
        r.control("PP", []);
        r.text([bold(usage.trim_start_matches("Usage: ").to_string())]);
        if let Some(after) = sub.get_after_long_help() {
            r.control("PP", []);
            r.control("nf", []);
            r.text([roman(after.to_string())]);
            r.control("fi", []);
        }
        r.to_writer(w)?;
        // Each subcommand's options under headings of its own ("READ OPTIONS: POLICY").
        let upper = name.to_uppercase();
        let s = sub.clone().mut_args(|a| {
            let h = match a.get_help_heading() {
                Some(h) => format!("{upper} options: {h}"),
                None => format!("{upper} options"),
            };
            a.help_heading(h)
        });
        clap_mangen::Man::new(s).render_options_section(w)?;
    }
    let mut r = Roff::new();
    r.control("SH", ["EXIT STATUS"]);
    for (code, text) in [
        (
            "0",
            "ran to the end (for live and mirror: stopped by SIGTERM or SIGINT).",
        ),
        (
            "1",
            "input or output error: a capture that cannot be opened, is not a capture, or is \
             corrupt or truncated part-way (everything found before it is written first), or an \
             output that cannot be written.",
        ),
        ("2", "usage or configuration error."),
    ] {
        r.control("TP", []);
        r.text([bold(code)]);
        r.text([roman(text)]);
    }
    r.control("SH", ["ALERT KINDS"]);
    r.text([roman(
        "Alerts are JSON lines with \"event_type\":\"alert\" and one of these kinds \
         (severity in brackets; the EVE signature_id is fixed per kind):",
    )]);
    for k in AlertKind::ALL {
        r.control("TP", []);
        r.text([
            bold(k.name()),
            roman(format!(" [{}, {}]", k.severity().name(), k.signature_id())),
        ]);
        r.text([roman(k.message())]);
    }
    r.control("SH", ["FILES"]);
    r.control("TP", []);
    r.text([italic(crate::config_file::DEFAULT_PATH)]);
    r.text([roman(
        "configuration of idemwatch live: every long option is a key (idemwatch check-config \
         shows the settings in effect).",
    )]);
    r.control("TP", []);
    r.text([italic(crate::config_file::MIRROR_DEFAULT_PATH)]);
    r.text([roman(
        "configuration of idemwatch mirror: every long option is a key (idemwatch mirror \
         --check-config shows the settings in effect).",
    )]);
    r.control("SH", ["SEE ALSO"]);
    r.text([roman(
        "journalctl(1), tcpdump(8), pcap-filter(7); README.md and docs/ of the idemwatch \
         sources: EVENTS.md (every field and counter), MIRROR.md, FLEET.md, LIVE.md.",
    )]);
    r.to_writer(w)?;
    man.render_version_section(w)
}

/// The completion script of `shell` for `cmd`.
pub fn completions(shell: clap_complete::Shell, cmd: Command, w: &mut dyn Write) {
    let mut cmd = cmd;
    clap_complete::generate(shell, &mut cmd, "idemwatch", w);
}
