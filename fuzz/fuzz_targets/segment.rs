#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| weavers_proto::fuzzing::segment(data));
