use super::*;

fn load(text: &str, overrides: &[&str]) -> anyhow::Result<PageServerConf> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(CONFIG_FILE), text).unwrap();
    let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    PageServerConf::load(dir.path(), &o)
}

#[test]
fn defaults_run_on_one_machine() {
    let dir = tempfile::tempdir().unwrap();
    let c = PageServerConf::load(dir.path(), &[]).unwrap();
    assert_eq!(c.listen_http.to_string(), "127.0.0.1:9898");
    assert_eq!(
        c.remote_storage,
        RemoteStorageConfig::Local {
            local_path: dir.path().join("remote_storage")
        }
    );
    assert_eq!(c.checkpoint_distance, 256 << 20);
    assert_eq!(c.compaction_period, Duration::from_secs(20));
}

#[test]
fn file_and_overrides() {
    let c = load(
        "checkpoint_distance = 1000\ncompaction_period = \"1h\"\nremote_storage = { endpoint = \"http://127.0.0.1:8333\", bucket = \"b\", region = \"r\", prefix = \"p/\" }\n",
        &["checkpoint_distance = 5", "io_engine = \"std\""],
    )
    .unwrap();
    assert_eq!(c.checkpoint_distance, 5);
    assert_eq!(c.io_engine, EngineChoice::Std);
    assert_eq!(c.compaction_period, Duration::from_secs(3600));
    assert!(
        matches!(c.remote_storage, RemoteStorageConfig::S3 { ref prefix, .. } if prefix == "p/")
    );
}

#[test]
fn bad_config_is_a_clear_error() {
    let err = |t: &str| format!("{:#}", load(t, &[]).unwrap_err());
    assert!(err("chekpoint_distance = 5").contains("unknown field `chekpoint_distance`"));
    assert!(err("checkpoint_distance = \"big\"").contains("checkpoint_distance"));
    assert!(err("checkpoint_distance = 0").contains("must be above zero"));
    assert!(err("compaction_period = \"soon\"").contains("compaction_period"));
    assert!(err("io_engine = \"epoll\"").contains("unknown io_engine"));
    assert!(err("listen_http = \"here\"").contains("listen_http"));
    assert!(
        err("remote_storage = { local_path = \"x\", bucket = \"b\" }").contains("remote_storage")
    );
    assert!(
        err("remote_storage = { endpoint = \"ftp://x\", bucket = \"b\" }")
            .contains("not an http(s) URL")
    );
    assert!(err("shutdown_timeout = \"later\"").contains("shutdown_timeout"));
    assert!(err("log_format = \"xml\"").contains("log_format"));
    assert!(err("http_auth_type = \"Basic\"").contains("http_auth_type"));
    assert!(err("http_auth_type = \"JWT\"").contains("auth_validation_public_key_path"));
    assert!(err("auth_validation_public_key_path = \"k.pem\"").contains("http_auth_type is not"));
}

#[test]
fn trust_on_a_public_address_only_when_said_explicitly() {
    let err = format!(
        "{:#}",
        load("listen_http = \"0.0.0.0:9898\"", &[]).unwrap_err()
    );
    assert!(err.contains("not a loopback address"), "{err}");
    let c = load(
        "listen_http = \"0.0.0.0:9898\"\nhttp_auth_type = \"Trust\"",
        &[],
    )
    .unwrap();
    assert_eq!(c.http_auth, HttpAuth::Trust);
    let c = load(
        "listen_http = \"[::]:9898\"",
        &[
            "http_auth_type = \"JWT\"",
            "auth_validation_public_key_path = \"keys/public.pem\"",
        ],
    )
    .unwrap();
    assert!(
        matches!(c.http_auth, HttpAuth::Jwt { ref public_key_path } if public_key_path.ends_with("keys/public.pem") && public_key_path.is_absolute())
    );
    assert!(load("listen_http = \"[::1]:9898\"", &[]).is_ok());
}

/// [`CONFIG_KEYS`] is the list serde knows (its error for an unknown key names them all).
#[test]
fn config_keys_are_the_keys_of_the_file() {
    let err = format!("{:#}", load("zzz = 1", &[]).unwrap_err());
    let expected = err.split("expected one of").nth(1).expect(&err);
    let mut known: Vec<&str> = expected
        .split(',')
        .map(|k| k.trim().trim_matches('`'))
        .map(|k| k.split('`').next().unwrap_or(k))
        .filter(|k| !["remote_storage_faults", "layer_map_mutation"].contains(k))
        .collect();
    known.sort_unstable();
    let mut listed = CONFIG_KEYS.to_vec();
    listed.sort_unstable();
    assert_eq!(known, listed);
}

/// The example configuration of `deploy/` is valid and names every setting a release
/// build accepts.
#[test]
fn the_example_config_is_valid_and_complete() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/pageserver.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(CONFIG_FILE), &text).unwrap();
    PageServerConf::load(dir.path(), &[]).unwrap();
    for key in CONFIG_KEYS {
        assert!(
            text.lines().any(|l| l
                .trim_start_matches(['#', ' '])
                .starts_with(&format!("{key} ="))),
            "{} does not show {key}",
            path.display()
        );
    }
}
