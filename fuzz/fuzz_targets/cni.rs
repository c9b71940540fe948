#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| weavers_cni::fuzzing::config_and_env(data));
