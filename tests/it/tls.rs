//! TLS decryption's inputs, against Wireshark's own tools (Debian's wireshark-common):
//! secrets that `editcap --inject-secrets` puts into a pcapng file are found there.

use std::path::Path;
use std::process::Command;

use idemwatch::source::secrets::tls_secrets;

fn editcap(args: &[&str]) {
    let out = Command::new("editcap")
        .args(args)
        .output()
        .expect("editcap runs (install Debian's wireshark-common)");
    assert!(
        out.status.success(),
        "editcap {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn secrets_that_editcap_injects_into_a_pcapng_are_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = |f: &str| dir.path().join(f).display().to_string();
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/demo.pcap");
    // Random secrets, two lines, the second without its newline, CRLF in the first.
    let keylog = "CLIENT_RANDOM 5a1d8a6ffc6e3fe3a1b0b6bd3a4a0b0c8f3dc6e7a9d4e3c2b1a0f9e8d7c6b5a4 \
                  0ddba11c0ffee1234567890abcdef0123456789abcdef0123456789abcdef0123456789abcdef01234\r\n\
                  CLIENT_TRAFFIC_SECRET_0 5a1d8a6ffc6e3fe3a1b0b6bd3a4a0b0c8f3dc6e7a9d4e3c2b1a0f9e8d7c6b5a4 \
                  00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    std::fs::write(d("keys.log"), keylog).expect("key log");
    editcap(&[
        "-F",
        "pcapng",
        &demo.display().to_string(),
        &d("demo.pcapng"),
    ]);
    editcap(&[
        "--inject-secrets",
        &format!("tls,{}", d("keys.log")),
        &d("demo.pcapng"),
        &d("with-keys.pcapng"),
    ]);
    let s = tls_secrets(std::fs::File::open(d("with-keys.pcapng")).expect("open"));
    assert_eq!(s.blocks, 1);
    let text = String::from_utf8(s.keylog).expect("text");
    // editcap keeps the lines as they were; the key log's reader takes CRLF and LF alike.
    assert_eq!(text.trim_end(), keylog.trim_end(), "{text:?}");
    // Without injection, and in the classic pcap: none.
    let none = tls_secrets(std::fs::File::open(d("demo.pcapng")).expect("open"));
    assert_eq!((none.blocks, none.keylog.len()), (0, 0));
    let pcap = tls_secrets(std::fs::File::open(&demo).expect("open"));
    assert_eq!(pcap.blocks, 0);
}
