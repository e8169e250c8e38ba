//! The vendored uPlot is the release the spec names, byte for byte, and every page carries
//! its licence.

use sha2::{Digest, Sha256};

fn hex(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

#[test]
fn uplot_is_the_pinned_release() {
    assert_eq!(
        hex(loupe_report::UPLOT_JS.as_bytes()),
        "19c8d4c6ad88929a79f4ae49d6f7161566dfd0ba3d15cc495e974f787eb78f1f"
    );
    assert_eq!(
        hex(loupe_report::UPLOT_CSS.as_bytes()),
        "df630c6a8d6f8eeaff264b50f73ce5b114f646ffd9a0bb74f049b0a00135fa04"
    );
    assert!(loupe_report::UPLOT_LICENSE.contains("The MIT License (MIT)"));
}

#[test]
fn every_page_embeds_the_licence_and_the_policy() {
    let html = String::from_utf8(loupe_report::render(&Default::default()).unwrap()).unwrap();
    assert!(html.contains("Copyright (c) 2022 Leon Sorokin"));
    assert!(html.contains(&format!(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"{}\">",
        loupe_report::CSP
    )));
}
