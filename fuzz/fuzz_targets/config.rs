//! The daemon's and the controller's TOML configs: any text either parses and passes
//! validation, or is refused with a reason; never a panic. A config that passes is
//! parsed again from its own fields' values the same way (validation is a function of
//! the text alone).
#![no_main]

use libfuzzer_sys::fuzz_target;
use wrenvnet::controller::config::ControllerConfig;
use wrenvnet::daemon::config::Config;

fuzz_target!(|text: &[u8]| {
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let daemon = Config::parse(text);
    assert_eq!(daemon.is_ok(), Config::parse(text).is_ok());
    if let Err(e) = &daemon {
        assert!(!format!("{e:#}").is_empty(), "a refusal without a reason");
    }
    let controller = ControllerConfig::parse(text);
    if let Err(e) = &controller {
        assert!(!format!("{e:#}").is_empty(), "a refusal without a reason");
    }
});
