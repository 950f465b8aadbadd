//! The event hooks Envoy calls (`envoy_dynamic_module_on_*`). Every hook catches panics and
//! fails open: a configuration that cannot be built is refused (null), a request that cannot be
//! logged is skipped, and Envoy itself never sees an unwind.

#![allow(unsafe_code)]

use crate::abi::{ABI_VERSION, ConfigHandle, EnvoyBuffer, LogLevel, LogView, log};
use crate::counters::Live;
use crate::logger::Logger;
use crate::ship::Hub;
use meshlog_core::FilterConfig;
use meshlog_core::config::Mode;
use std::ffi::c_void;
use std::os::raw::c_char;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

fn guarded<T>(what: &str, fallback: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        log(LogLevel::Error, &format!("meshlog: {what} failed; skipped"));
        fallback
    })
}

/// Called once when Envoy loads the module: the ABI version it was built against.
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const c_char {
    ABI_VERSION.as_ptr().cast()
}

/// Builds a configuration from `logger_config` (the Wasm module's JSON): parses it, defines the
/// counters and starts the shipping thread. Null (Envoy refuses the configuration) on an error,
/// which is logged with the field it names.
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_access_logger_config_new(
    config_envoy_ptr: *mut c_void,
    _name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> *const c_void {
    guarded("configuration", std::ptr::null(), || {
        let raw = config.to_vec();
        // The native reading: zstd bodies unless the configuration says otherwise.
        let cfg = match FilterConfig::from_json_native(&raw) {
            Ok(cfg) => cfg,
            Err(e) => {
                log(LogLevel::Error, &format!("meshlog: {e}"));
                return std::ptr::null();
            }
        };
        if cfg.mode != Mode::Http {
            log(
                LogLevel::Error,
                "meshlog: $.mode: the native module is an HTTP access logger; \"network\" is the Wasm module's",
            );
            return std::ptr::null();
        }
        let counters = Live::define(ConfigHandle(config_envoy_ptr));
        let hub = Arc::new(Hub::new(cfg, counters));
        if let Err(e) = hub.spawn() {
            log(
                LogLevel::Error,
                &format!("meshlog: cannot start the shipping thread: {e}"),
            );
            return std::ptr::null();
        }
        log(
            LogLevel::Info,
            &format!(
                "meshlog: native access logger configured; shipping to http://{}{}; redaction policy {}; sampling {}",
                hub.cfg.collector.authority,
                hub.cfg.collector.path,
                hub.cfg.redaction.version(),
                if hub.cfg.sampling.is_enabled() {
                    hub.cfg.sampling.version()
                } else {
                    "off"
                }
            ),
        );
        Arc::into_raw(hub).cast()
    })
}

/// Envoy drops the configuration: what is held is shipped (bounded), counting stops.
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_access_logger_config_destroy(config: *const c_void) {
    guarded("configuration teardown", (), || {
        if config.is_null() {
            return;
        }
        // SAFETY: `config` came from `Arc::into_raw` in config_new and Envoy destroys it once.
        let hub = unsafe { Arc::from_raw(config.cast::<Hub>()) };
        hub.stop();
    });
}

/// A logger for one Envoy thread (each worker, and the main thread).
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_access_logger_new(
    config: *const c_void,
    _logger_envoy_ptr: *mut c_void,
) -> *const c_void {
    guarded("logger creation", std::ptr::null(), || {
        if config.is_null() {
            return std::ptr::null();
        }
        // SAFETY: `config` is the live Arc from config_new; we take a new reference to it.
        let hub = unsafe {
            Arc::increment_strong_count(config.cast::<Hub>());
            Arc::from_raw(config.cast::<Hub>())
        };
        let lane = hub.lane();
        Box::into_raw(Box::new(Logger { hub, lane }))
            .cast_const()
            .cast()
    })
}

/// One finished request (or other log event) on the logger's thread.
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_access_logger_log(
    logger_envoy_ptr: *mut c_void,
    logger: *const c_void,
    _log_type: u32,
) {
    guarded("logging a request", (), || {
        // SAFETY: `logger` is the Box from logger_new, alive until logger_destroy; Envoy calls
        // it from the logger's own thread only.
        if let Some(l) = unsafe { logger.cast::<Logger>().as_ref() } {
            l.log(LogView(logger_envoy_ptr));
        }
    });
}

/// Before a logger is destroyed: its final tally is buffered and its batches handed to the
/// shipping thread.
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_access_logger_flush(logger: *const c_void) {
    guarded("flushing", (), || {
        // SAFETY: as in `log`.
        if let Some(l) = unsafe { logger.cast::<Logger>().as_ref() } {
            l.hub.close(&l.lane);
        }
    });
}

/// The logger's thread is going away.
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_access_logger_destroy(logger: *const c_void) {
    guarded("logger teardown", (), || {
        if logger.is_null() {
            return;
        }
        // SAFETY: `logger` is the Box from logger_new; Envoy destroys it once.
        let l = unsafe { Box::from_raw(logger.cast::<Logger>().cast_mut()) };
        // A lane whose logger was destroyed without a flush still gets shipped.
        l.hub.close(&l.lane);
    });
}
