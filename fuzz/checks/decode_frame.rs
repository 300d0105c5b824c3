//! One frame of any link type through the decoder (fragments included: the decoder keeps its
//! fragment table across frames of one input).

use idemwatch::decode::{Decoder, DefragSettings, LinkType};
use idemwatch::stats::Stats;
use idemwatch::ts::Timestamp;

const LINKS: [LinkType; 8] = [
    LinkType::Ethernet,
    LinkType::Null,
    LinkType::Loop,
    LinkType::LinuxSll,
    LinkType::LinuxSll2,
    LinkType::Raw,
    LinkType::Ipv4,
    LinkType::Ipv6,
];

/// One input through the target: a panic, a failed assertion included, is a finding.
pub fn check(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let link = LINKS[usize::from(sel) % LINKS.len()];
    let mut d = Decoder::new(&DefragSettings::default());
    let mut st = Stats::default();
    // Several frames cut from the input, to exercise the fragment table.
    for (i, frame) in rest.split(|b| *b == 0xA5).enumerate().take(16) {
        let wire = frame.len() as u32 + u32::from(sel >> 4);
        let _ = d.decode(Timestamp(i as i64), link, frame, wire, &mut st);
    }
}
