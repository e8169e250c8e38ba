//! `loupe serve`'s flags against the server library's configuration: the flags' defaults are
//! `ServerConfig::default()` field by field, and each flag lands in its field.

use clap::Parser;
use loupe_cli::{Cli, Command};
use loupe_server::ServerConfig;
use serde_json::Value;

fn parse(flags: &[&str]) -> ServerConfig {
    let argv = ["loupe", "serve"].iter().chain(flags);
    match Cli::try_parse_from(argv).unwrap().command {
        Command::Serve(args) => args.into(),
        _ => panic!("not the serve command"),
    }
}

#[test]
fn flag_defaults_are_the_library_defaults() {
    let flags = serde_json::to_value(parse(&[])).unwrap();
    let library = serde_json::to_value(ServerConfig::default()).unwrap();
    let (flags, library) = (flags.as_object().unwrap(), library.as_object().unwrap());
    let keys = |m: &serde_json::Map<String, Value>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(flags), keys(library));
    for (field, want) in library {
        assert_eq!(&flags[field], want, "--{}", field.replace('_', "-"));
    }
}

#[test]
fn each_flag_lands_in_its_field() {
    let c = parse(&[
        "--model-path",
        "small",
        "--tokenizer-path",
        "/models/tok",
        "--served-model-name",
        "m",
        "--port",
        "0",
        "--tp-size",
        "2",
        "--dp-size",
        "3",
        "--api-key",
        "k",
        "--chunked-prefill-size",
        "-1",
        "--schedule-conservativeness",
        "0.5",
        "--max-queued-requests",
        "7",
        "--disable-radix-cache",
        "--enable-cache-report",
        "--trust-remote-code",
    ]);
    assert_eq!(c.model_path, "small");
    assert_eq!(c.tokenizer_path.as_deref(), Some("/models/tok".as_ref()));
    assert_eq!(c.served_model_name(), "m");
    assert_eq!((c.port, c.tp_size, c.dp_size), (0, 2, 3));
    assert_eq!(c.api_key.as_deref(), Some("k"));
    assert_eq!(c.chunked_prefill_size, -1);
    assert_eq!(c.schedule_conservativeness, 0.5);
    assert_eq!(c.max_queued_requests, Some(7));
    assert!(c.disable_radix_cache && c.enable_cache_report && c.trust_remote_code);
    assert!(!c.skip_tokenizer_init);
    // API keys never reach /server_info.
    assert_eq!(c.redacted_json()["api_key"], "<redacted>");
    assert_eq!(c.redacted_json()["admin_api_key"], Value::Null);
}
