//! SQL text through the statement bounds, the metered parser, the guard,
//! planning under a token's policy and execution.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_planner::fuzzing::statement(data));
