//! The TOML configuration of a node and of the daemon: bad input is an error, never a panic,
//! and a configuration that validates stays within the limits.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cfg) = mcos_node::NodeConfig::from_toml(text) {
        assert!(cfg.validate().is_ok());
        let _ = cfg.topology();
    }
    let _ = mcos_server::DaemonConfig::from_toml(text);
});
