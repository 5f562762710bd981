//! Flight SQL tickets, prepared-statement handles, parameters, commands
//! and action bodies.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_flight::fuzzing::ticket(data));
