//! A Trino `POST /v1/statement` with client-chosen headers and body,
//! followed to its end through the router.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_trino::fuzzing::request(data));
