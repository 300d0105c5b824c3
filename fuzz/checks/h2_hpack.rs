//! HPACK header blocks: any bytes, cut into blocks at a separator byte the input picks (its
//! first byte, which also sets the SETTINGS table size limit), decoded in order by one
//! decoder. Nothing panics; no block gives more than its list budget and what it gives is what
//! it reports; the table stays within its maximum and 64 KiB; once a block fails, every later
//! block is refused without giving a field.

use idemwatch::http::h2::hpack::{Decoder, HpackError, MAX_TABLE_SIZE};

/// The list budget per block: small, so the bound is hit often.
const MAX_LIST: usize = 2048;

/// One input through the target: a panic, a failed assertion included, is a finding.
pub fn check(data: &[u8]) {
    let Some((&sep, rest)) = data.split_first() else {
        return;
    };
    let mut decoder = Decoder::new();
    // 0 to 65 535: below, at and above the default 4096 and the 64 KiB ceiling's reach.
    decoder.set_max_size_limit(u32::from(sep) * 257);
    let mut failed = false;
    for block in rest.split(|&b| b == sep) {
        let mut given = 0usize;
        let mut fields = 0usize;
        let result = decoder.decode(block, MAX_LIST, |name, value, _| {
            given += name.len() + value.len() + 32;
            fields += 1;
        });
        assert!(given <= MAX_LIST);
        match result {
            Ok(used) => {
                assert!(!failed, "a block decoded after a failure");
                assert_eq!(used, given);
            }
            Err(e) => {
                if failed {
                    assert_eq!(e, HpackError::Broken);
                    assert_eq!(fields, 0, "a broken decoder gave fields");
                }
                failed = true;
            }
        }
        assert_eq!(decoder.is_broken(), failed);
        assert!(decoder.table_size() <= decoder.max_table_size());
        assert!(decoder.max_table_size() <= MAX_TABLE_SIZE);
    }
}
